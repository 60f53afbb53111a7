//! `manifests/crds/` and the Helm chart's `crds/` must be exactly what `budgetgate crds` prints.

#[test]
fn committed_crds_equal_the_generated_ones() {
    let generated = budgetgate::cli::crds_yaml();
    for file in [
        "manifests/crds/crds.yaml",
        "charts/budgetgate/crds/crds.yaml",
    ] {
        let path = format!("{}/{file}", env!("CARGO_MANIFEST_DIR"));
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            committed == generated,
            "{file} is stale: run `cargo run -q -- crds > {file}`"
        );
    }
}

#[test]
fn every_crd_has_printer_columns_and_conditions() {
    for crd in budgetgate::api::crds() {
        let version = &crd.spec.versions[0];
        let name = &crd.spec.names.kind;
        assert!(
            version
                .additional_printer_columns
                .as_ref()
                .is_some_and(|c| c.len() >= 3),
            "{name} has printer columns"
        );
        let schema = serde_json::to_value(&version.schema).unwrap();
        assert!(
            schema
                .pointer("/openAPIV3Schema/properties/status/properties/conditions")
                .is_some(),
            "{name} has status.conditions"
        );
    }
}
