//! `manifests/crds/` must be exactly what `budgetgate crds` prints.

#[test]
fn committed_crds_equal_the_generated_ones() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/crds/crds.yaml");
    let committed = std::fs::read_to_string(path).expect("manifests/crds/crds.yaml exists");
    let generated = budgetgate::cli::crds_yaml();
    assert!(
        committed == generated,
        "manifests/crds/crds.yaml is stale: run `cargo run -q -- crds > manifests/crds/crds.yaml`"
    );
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
