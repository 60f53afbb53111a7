//! Cluster mode: watches on Namespaces, ReliabilityPolicies, ServiceLevelObjectives,
//! TeamBudgets, BudgetExceptions, Releases and ReplicaSets (of which only the template
//! revision and owner are kept) feed one store; each batch of events publishes a new
//! index. Budgets come from the statuses the controller writes.

use super::Shutdown;
use crate::api::{
    BudgetException, BudgetState, Duration, Release, ReliabilityPolicy, ServiceLevelObjective,
    Severity, TeamBudget, Timestamp,
};
use crate::budget::Assessment;
use crate::decision::workload_revision;
use crate::index::{Budgets, Index, NamespaceMeta, ObjectKey, ReleaseEntry};
use crate::policy::Policy;
use crate::webhook::Shared;
use crate::webhook::metrics::SourceLabel;
use futures_util::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One watched kind: the live objects and, during a relist, the objects seen so far.
struct Kind<V> {
    live: BTreeMap<ObjectKey, V>,
    pending: Option<BTreeMap<ObjectKey, V>>,
    synced: bool,
}

impl<V> Default for Kind<V> {
    fn default() -> Self {
        Kind {
            live: BTreeMap::new(),
            pending: None,
            synced: false,
        }
    }
}

impl<V> Kind<V> {
    /// Applies a watch event; `convert` turns an object into what is kept (or nothing).
    fn apply<K: Resource>(&mut self, event: Event<K>, convert: impl Fn(&K) -> Option<V>) {
        let key = |o: &K| {
            ObjectKey::new(
                o.meta().namespace.clone().unwrap_or_default(),
                o.meta().name.clone().unwrap_or_default(),
            )
        };
        match event {
            Event::Init => self.pending = Some(BTreeMap::new()),
            Event::InitApply(o) => {
                if let (Some(pending), Some(v)) = (self.pending.as_mut(), convert(&o)) {
                    pending.insert(key(&o), v);
                }
            }
            Event::InitDone => {
                if let Some(pending) = self.pending.take() {
                    self.live = pending;
                }
                self.synced = true;
            }
            Event::Apply(o) => match convert(&o) {
                Some(v) => {
                    self.live.insert(key(&o), v);
                }
                None => {
                    self.live.remove(&key(&o));
                }
            },
            Event::Delete(o) => {
                self.live.remove(&key(&o));
            }
        }
    }
}

#[derive(Default)]
struct Store {
    namespaces: Kind<NamespaceMeta>,
    policies: Kind<ReliabilityPolicy>,
    slos: Kind<ServiceLevelObjective>,
    team_budgets: Kind<TeamBudget>,
    exceptions: Kind<BudgetException>,
    releases: Kind<ReleaseEntry>,
    /// (owning Deployment, template revision, creation time) per ReplicaSet.
    replica_sets: Kind<(String, String, Option<Timestamp>)>,
    /// When this store first saw each namespace managed (a team label).
    first_managed: BTreeMap<String, Timestamp>,
}

// Events are moved once from the watch into the store; boxing them would only add an
// allocation per event.
#[allow(clippy::large_enum_variant)]
enum Watched {
    Namespace(Event<Namespace>),
    Policy(Event<ReliabilityPolicy>),
    Slo(Event<ServiceLevelObjective>),
    TeamBudget(Event<TeamBudget>),
    Exception(Event<BudgetException>),
    Release(Event<Release>),
    ReplicaSet(Event<ReplicaSet>),
}

impl Store {
    fn apply(&mut self, event: Watched) {
        match event {
            Watched::Namespace(e) => {
                self.namespaces.apply(e, |ns: &Namespace| {
                    Some(NamespaceMeta::from_labels(ns.labels()))
                });
                let now = Timestamp::now();
                for (key, meta) in &self.namespaces.live {
                    if meta.team.is_some() {
                        self.first_managed.entry(key.name.clone()).or_insert(now);
                    }
                }
            }
            Watched::Policy(e) => self
                .policies
                .apply(e, |p: &ReliabilityPolicy| Some(p.clone())),
            Watched::Slo(e) => self
                .slos
                .apply(e, |s: &ServiceLevelObjective| Some(s.clone())),
            Watched::TeamBudget(e) => self.team_budgets.apply(e, |t: &TeamBudget| Some(t.clone())),
            Watched::Exception(e) => self
                .exceptions
                .apply(e, |x: &BudgetException| Some(x.clone())),
            Watched::Release(e) => self
                .releases
                .apply(e, |r: &Release| Some(ReleaseEntry::from_release(r))),
            Watched::ReplicaSet(e) => self.replica_sets.apply(e, |rs: &ReplicaSet| {
                let owner = rs
                    .owner_references()
                    .iter()
                    .find(|o| o.kind == "Deployment" && o.controller == Some(true))?;
                // Only the revision is kept: the template itself can be large.
                let value = serde_json::to_value(rs).ok()?;
                let created = rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
                Some((owner.name.clone(), workload_revision(&value), created))
            }),
        }
    }

    fn synced(&self) -> bool {
        self.namespaces.synced
            && self.policies.synced
            && self.slos.synced
            && self.team_budgets.synced
            && self.exceptions.synced
            && self.releases.synced
            && self.replica_sets.synced
    }

    /// The policy in force: the one named `platform`, else the only one. A policy that
    /// fails validation is logged and ignored (the webhook then fails open).
    fn policy(&self) -> Option<(Policy, &ReliabilityPolicy)> {
        let chosen = self
            .policies
            .live
            .iter()
            .find(|(k, _)| k.name == "platform")
            .or_else(|| {
                (self.policies.live.len() == 1)
                    .then(|| self.policies.live.iter().next())
                    .flatten()
            })?
            .1;
        match Policy::from_spec(&chosen.spec) {
            Ok(policy) => Some((policy, chosen)),
            Err(e) => {
                tracing::error!(policy = %chosen.name_any(), error = %e, "invalid ReliabilityPolicy ignored");
                None
            }
        }
    }

    /// [`crate::index::predates_management`] for a ReplicaSet of `namespace`.
    fn ran_before_management(&self, namespace: &str, created: Option<Timestamp>) -> bool {
        let since = [
            self.first_managed.get(namespace).copied(),
            crate::index::oldest_release(&self.releases.live, namespace),
        ];
        crate::index::predates_management(since.into_iter().flatten(), created)
    }

    fn index(&self) -> Index {
        let policy = self.policy();
        let namespaces: BTreeMap<String, NamespaceMeta> = self
            .namespaces
            .live
            .iter()
            .map(|(k, v)| (k.name.clone(), v.clone()))
            .collect();
        let mut revisions: BTreeMap<ObjectKey, std::collections::BTreeSet<String>> =
            BTreeMap::new();
        for (key, (owner, revision, created)) in &self.replica_sets.live {
            if !self.ran_before_management(&key.namespace, *created) {
                continue;
            }
            revisions
                .entry(ObjectKey::new(&key.namespace, owner))
                .or_default()
                .insert(revision.clone());
        }
        let budgets = policy
            .as_ref()
            .map(|(p, object)| self.budgets(p, object, &namespaces))
            .unwrap_or_default();
        Index {
            policy_name: policy.as_ref().map(|(_, object)| object.name_any()),
            policy: policy.map(|(p, _)| p),
            namespaces,
            slos: self
                .slos
                .live
                .iter()
                .map(|(k, s)| (k.clone(), s.spec.clone()))
                .collect(),
            exceptions: self
                .exceptions
                .live
                .iter()
                .map(|(k, x)| (k.clone(), x.spec.clone()))
                .collect(),
            releases: self.releases.live.clone(),
            revisions,
            deployments: BTreeMap::new(),
            budgets,
            team_budgets: self
                .team_budgets
                .live
                .values()
                .filter_map(|t| Some((t.spec.team.clone(), t.status.clone()?)))
                .collect(),
        }
    }

    /// Budgets as the controller last published them in the statuses.
    fn budgets(
        &self,
        policy: &Policy,
        object: &ReliabilityPolicy,
        namespaces: &BTreeMap<String, NamespaceMeta>,
    ) -> Budgets {
        let mut budgets = Budgets::default();
        let mut oldest: Option<Timestamp> = None;
        let tier_of = |namespace: &str| {
            namespaces
                .get(namespace)
                .and_then(|m| m.tier.clone())
                .unwrap_or_else(|| policy.default_tier.clone())
        };
        for (key, slo) in &self.slos.live {
            let Some(status) = &slo.status else { continue };
            let Some(at) = status.evaluated_at.as_ref().map(|t| t.0) else {
                continue;
            };
            oldest = Some(oldest.map_or(at, |o| o.min(at)));
            let assessment = assessment(
                policy,
                &tier_of(&key.namespace),
                status.remaining,
                &status.burn_rates,
                &status.alerts,
                status.band.clone(),
                status.state,
                status.exhausts_at.as_ref().map(|t| t.0),
            );
            budgets.slos.insert(key.clone(), assessment);
        }
        for team_budget in self.team_budgets.live.values() {
            let Some(status) = &team_budget.status else {
                continue;
            };
            for tier in &status.tiers {
                let assessment = assessment(
                    policy,
                    &tier.tier,
                    tier.remaining,
                    &tier.burn_rates,
                    &tier.alerts,
                    tier.band.clone(),
                    tier.state,
                    None,
                );
                let assessment = Assessment {
                    lacking: tier.slos_without_data as usize,
                    ..assessment
                };
                budgets.teams.insert(
                    (team_budget.spec.team.clone(), tier.tier.clone()),
                    assessment,
                );
            }
        }
        if let Some(status) = &object.status {
            for p in &status.platform {
                let assessment = assessment(
                    policy,
                    &p.tier,
                    p.remaining,
                    &BTreeMap::new(),
                    &[],
                    p.band.clone(),
                    p.state,
                    None,
                );
                budgets.platform.insert(p.tier.clone(), assessment);
            }
        }
        budgets.evaluated_at = oldest;
        budgets
    }
}

/// An assessment from a published status. `paging` is recovered from the names of the
/// firing alerts and the tier's alert windows.
#[allow(clippy::too_many_arguments)]
fn assessment(
    policy: &Policy,
    tier: &str,
    remaining: Option<f64>,
    burn_rates: &BTreeMap<String, f64>,
    alerts: &[String],
    band: Option<String>,
    state: Option<BudgetState>,
    exhausts_at: Option<Timestamp>,
) -> Assessment {
    let paging = policy.tier(tier).is_some_and(|t| {
        t.alert_windows
            .iter()
            .any(|w| w.severity == Severity::Page && alerts.contains(&w.name))
    }) || state == Some(BudgetState::Burning);
    Assessment {
        remaining,
        burn_rates: burn_rates
            .iter()
            .filter_map(|(k, v)| Some((Duration::parse(k).ok()?, Some(*v))))
            .collect(),
        alerts: alerts.to_vec(),
        paging,
        band,
        state: state.unwrap_or(BudgetState::Unknown),
        exhausts_at,
        lacking: 0,
    }
}

/// Builds a client from `--kubeconfig`, or the in-cluster / default configuration.
pub async fn client(kubeconfig: Option<&std::path::Path>) -> Result<Client, kube::Error> {
    match kubeconfig {
        Some(path) => {
            let config = kube::Config::from_custom_kubeconfig(
                kube::config::Kubeconfig::read_from(path).map_err(kube::Error::InferKubeconfig)?,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .map_err(kube::Error::InferKubeconfig)?;
            Client::try_from(config)
        }
        None => Client::try_default().await,
    }
}

/// One list of every kind the webhook watches, without a watch: what `budgetgate status`
/// and `budgetgate report` read in cluster mode.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub namespaces: Vec<Namespace>,
    pub policies: Vec<ReliabilityPolicy>,
    pub slos: Vec<ServiceLevelObjective>,
    pub team_budgets: Vec<TeamBudget>,
    pub exceptions: Vec<BudgetException>,
    pub releases: Vec<Release>,
    pub replica_sets: Vec<ReplicaSet>,
}

impl Listing {
    /// Lists every kind once.
    pub async fn list(client: &Client) -> Result<Listing, kube::Error> {
        async fn all<K>(client: &Client) -> Result<Vec<K>, kube::Error>
        where
            K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        {
            let list = Api::<K>::all(client.clone())
                .list(&kube::api::ListParams::default())
                .await?;
            Ok(list.items)
        }
        Ok(Listing {
            namespaces: all(client).await?,
            policies: all(client).await?,
            slos: all(client).await?,
            team_budgets: all(client).await?,
            exceptions: all(client).await?,
            releases: all(client).await?,
            replica_sets: all(client).await?,
        })
    }

    /// The index the webhook's watch would publish for these objects: each kind is fed to
    /// the same store as one complete watch listing.
    pub fn index(&self) -> Index {
        fn feed<K: Resource + Clone>(
            objects: &[K],
            wrap: fn(Event<K>) -> Watched,
            store: &mut Store,
        ) {
            store.apply(wrap(Event::Init));
            for o in objects {
                store.apply(wrap(Event::InitApply(o.clone())));
            }
            store.apply(wrap(Event::InitDone));
        }
        let mut store = Store::default();
        feed(&self.namespaces, Watched::Namespace, &mut store);
        feed(&self.policies, Watched::Policy, &mut store);
        feed(&self.slos, Watched::Slo, &mut store);
        feed(&self.team_budgets, Watched::TeamBudget, &mut store);
        feed(&self.exceptions, Watched::Exception, &mut store);
        feed(&self.releases, Watched::Release, &mut store);
        feed(&self.replica_sets, Watched::ReplicaSet, &mut store);
        store.index()
    }
}

/// Lists every watched kind once and builds the index the webhook would answer from.
pub async fn load_index(client: &Client) -> Result<Index, kube::Error> {
    Ok(Listing::list(client).await?.index())
}

/// Watches until shutdown, publishing a new index after each batch of events once every
/// kind has been listed. Watch errors are retried with backoff; the last index stays.
pub async fn watch(client: Client, shared: Arc<Shared>, shutdown: Shutdown) {
    let config = watcher::Config::default;
    let streams = vec![
        watcher::watcher(Api::<Namespace>::all(client.clone()), config())
            .default_backoff()
            .map(|e| e.map(Watched::Namespace))
            .boxed(),
        watcher::watcher(Api::<ReliabilityPolicy>::all(client.clone()), config())
            .default_backoff()
            .map(|e| e.map(Watched::Policy))
            .boxed(),
        watcher::watcher(Api::<ServiceLevelObjective>::all(client.clone()), config())
            .default_backoff()
            .map(|e| e.map(Watched::Slo))
            .boxed(),
        watcher::watcher(Api::<TeamBudget>::all(client.clone()), config())
            .default_backoff()
            .map(|e| e.map(Watched::TeamBudget))
            .boxed(),
        watcher::watcher(Api::<BudgetException>::all(client.clone()), config())
            .default_backoff()
            .map(|e| e.map(Watched::Exception))
            .boxed(),
        watcher::watcher(Api::<Release>::all(client.clone()), config())
            .default_backoff()
            .map(|e| e.map(Watched::Release))
            .boxed(),
        watcher::watcher(Api::<ReplicaSet>::all(client), config())
            .default_backoff()
            .map(|e| e.map(Watched::ReplicaSet))
            .boxed(),
    ];
    let mut events = futures_util::stream::select_all(streams);
    let mut store = Store::default();
    let stop = super::stopped(shutdown);
    tokio::pin!(stop);
    loop {
        let first = tokio::select! {
            event = events.next() => event,
            () = &mut stop => return,
        };
        let Some(first) = first else { return };
        let mut batch = vec![first];
        // Everything already waiting goes into the same snapshot.
        while let Some(Some(event)) = events.next().now_or_never() {
            batch.push(event);
        }
        for event in batch {
            match event {
                Ok(event) => store.apply(event),
                Err(e) => {
                    tracing::warn!(error = %e, "watch failed; retrying with backoff");
                    shared
                        .metrics
                        .reload_errors
                        .get_or_create(&SourceLabel { source: "watch" })
                        .inc();
                }
            }
        }
        if store.synced() {
            shared.publish(store.index());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{
        ServiceLevelObjectiveStatus, TeamBudgetSpec, TeamBudgetStatus, TierBudget, Time,
    };
    use serde_json::json;

    fn object<K: serde::de::DeserializeOwned>(value: serde_json::Value) -> K {
        serde_json::from_value(value).unwrap()
    }

    fn policy() -> ReliabilityPolicy {
        crate::policy::sample_policy()
    }

    fn namespace(name: &str, team: &str) -> Namespace {
        object(json!({"metadata": {"name": name, "labels": {"budgetgate.dev/team": team}}}))
    }

    fn sync<K: Resource>(objects: Vec<K>, wrap: fn(Event<K>) -> Watched, store: &mut Store) {
        store.apply(wrap(Event::Init));
        for o in objects {
            store.apply(wrap(Event::InitApply(o)));
        }
        store.apply(wrap(Event::InitDone));
    }

    /// TeamBudget payments, production: 80% remaining, healthy.
    fn payments_budget() -> TeamBudget {
        let mut team = TeamBudget::new(
            "payments",
            TeamBudgetSpec {
                team: "payments".into(),
            },
        );
        team.status = Some(TeamBudgetStatus {
            tiers: vec![TierBudget {
                tier: "production".into(),
                remaining: Some(0.8),
                band: Some("healthy".into()),
                state: Some(BudgetState::Healthy),
                ..Default::default()
            }],
            ..Default::default()
        });
        team
    }

    fn synced_store() -> Store {
        let mut store = Store::default();
        sync(
            vec![namespace("shop", "payments")],
            Watched::Namespace,
            &mut store,
        );
        sync(vec![policy()], Watched::Policy, &mut store);
        let mut slo: ServiceLevelObjective = object(json!({
            "metadata": {"name": "checkout-availability", "namespace": "shop"},
            "spec": {"service": "checkout", "objective": 99.9, "indicator": {"ratio": {"errors": "e", "total": "t"}}}
        }));
        slo.status = Some(ServiceLevelObjectiveStatus {
            remaining: Some(0.4),
            burn_rates: [("1h".to_owned(), 20.0), ("5m".to_owned(), 30.0)].into(),
            band: Some("caution".into()),
            state: Some(BudgetState::Burning),
            alerts: vec!["page-fast".into()],
            evaluated_at: Some(Time("2026-11-29T09:59:30Z".parse().unwrap())),
            ..Default::default()
        });
        sync(vec![slo], Watched::Slo, &mut store);
        let team = payments_budget();
        sync(vec![team], Watched::TeamBudget, &mut store);
        sync(vec![], Watched::Exception, &mut store);
        sync(vec![], Watched::Release, &mut store);
        let rs: ReplicaSet = object(json!({
            "metadata": {"name": "checkout-abc", "namespace": "shop", "creationTimestamp": "2026-10-01T00:00:00Z",
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout", "uid": "u", "controller": true}]},
            "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": "checkout", "pod-template-hash": "abc"}},
                     "spec": {"containers": [{"name": "app", "image": "shop/checkout:v2"}]}}}
        }));
        sync(vec![rs], Watched::ReplicaSet, &mut store);
        store
    }

    #[test]
    fn not_synced_until_every_kind_is_listed() {
        let mut store = Store::default();
        sync(
            vec![namespace("shop", "payments")],
            Watched::Namespace,
            &mut store,
        );
        assert!(!store.synced());
        assert!(synced_store().synced());
    }

    #[test]
    fn index_carries_labels_revisions_and_published_budgets() {
        let index = synced_store().index();
        assert_eq!(
            index.team_of("shop"),
            Some(("payments".into(), "production".into()))
        );
        assert!(index.policy.is_some());
        // The same revision the decision computes for the Deployment's own template.
        let deployment = json!({"spec": {"template": {"metadata": {"labels": {"app": "checkout"}},
                                 "spec": {"containers": [{"name": "app", "image": "shop/checkout:v2"}]}}}});
        assert_eq!(
            index.revisions[&ObjectKey::new("shop", "checkout")],
            [workload_revision(&deployment)].into()
        );
        let slo = &index.budgets.slos[&ObjectKey::new("shop", "checkout-availability")];
        assert_eq!(slo.remaining, Some(0.4));
        assert!(slo.paging, "page-fast is a page-severity pair of the tier");
        assert_eq!(slo.burn_rate(3_600), Some(20.0));
        let team = &index.budgets.teams[&("payments".to_owned(), "production".to_owned())];
        assert_eq!(team.band.as_deref(), Some("healthy"));
        assert_eq!(
            index.budgets.evaluated_at,
            Some("2026-11-29T09:59:30Z".parse().unwrap())
        );
    }

    #[test]
    fn replica_sets_created_since_the_namespace_was_managed_are_no_rollback_targets() {
        let mut store = synced_store();
        let release: Release = object(json!({
            "apiVersion": "budgetgate.dev/v1alpha1", "kind": "Release",
            "metadata": {"name": "checkout-abe6038a-4", "namespace": "shop", "creationTimestamp": "2026-11-01T00:00:00Z"},
            "spec": {"deployment": "checkout", "revision": "abe6038a51"},
            "status": {"phase": "Direct"}
        }));
        sync(vec![release], Watched::Release, &mut store);
        let replica_set = |name: &str, created: &str, image: &str| -> ReplicaSet {
            object(json!({
                "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created,
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout", "uid": "u", "controller": true}]},
                "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": "checkout"}},
                         "spec": {"containers": [{"name": "app", "image": image}]}}}
            }))
        };
        // checkout-abc (v2, 2026-10-01) predates the namespace's first Release; the planted
        // v3 (created after it, replicas 0, adopted) does not.
        sync(
            vec![
                replica_set("checkout-abc", "2026-10-01T00:00:00Z", "shop/checkout:v2"),
                replica_set(
                    "checkout-planted",
                    "2026-11-28T00:00:00Z",
                    "shop/checkout:v3",
                ),
            ],
            Watched::ReplicaSet,
            &mut store,
        );
        let v2 = json!({"spec": {"template": {"metadata": {"labels": {"app": "checkout"}},
                         "spec": {"containers": [{"name": "app", "image": "shop/checkout:v2"}]}}}});
        let index = store.index();
        let key = ObjectKey::new("shop", "checkout");
        assert_eq!(index.revisions[&key], [workload_revision(&v2)].into());
        // The Direct Release's revision ran too.
        assert_eq!(
            index.ran_before(&key),
            [workload_revision(&v2), "abe6038a51".to_owned()].into()
        );
        // The admission path's question about one revision agrees with the set.
        assert!(index.has_run(&key, "abe6038a51") && index.has_run(&key, &workload_revision(&v2)));
        assert!(!index.has_run(&key, "0000000000"));
    }

    #[test]
    fn a_page_burn_denial_names_the_alert_the_team_budget_publishes() {
        let mut store = synced_store();
        let mut team = payments_budget();
        if let Some(status) = team.status.as_mut() {
            status.evaluated_at = Some(Time("2026-11-29T09:59:30Z".parse().unwrap()));
            status.tiers[0].state = Some(BudgetState::Burning);
            status.tiers[0].alerts = vec!["page-fast".into()];
            status.tiers[0].burn_rates = [("5m".to_owned(), 20.0), ("1h".to_owned(), 20.0)].into();
        }
        sync(vec![team], Watched::TeamBudget, &mut store);
        let index = store.index();
        let team = &index.budgets.teams[&("payments".to_owned(), "production".to_owned())];
        assert_eq!(team.alerts, ["page-fast"]);
        assert!(team.paging);
        let deployment = |image: &str| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "cart", "namespace": "shop", "labels": {"app": "cart"}},
                   "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "cart"}},
                            "template": {"metadata": {"labels": {"app": "cart"}},
                                         "spec": {"containers": [{"name": "app", "image": image}]}}}})
        };
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u-1", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "name": "cart", "namespace": "shop", "operation": "UPDATE",
            "userInfo": {"username": "jane@example.com"},
            "object": deployment("shop/cart:v2"), "oldObject": deployment("shop/cart:v1")}});
        let request = crate::decision::parse_review(review.to_string().as_bytes()).unwrap();
        let d = crate::decision::decide(&request, &index, "2026-11-29T10:00:00Z".parse().unwrap())
            .unwrap();
        assert_eq!(
            d.message.as_deref(),
            Some(
                "budgetgate denied the rollout of deployment shop/cart (team payments, tier production): \
                 team payments is burning its error budget at page level (page-fast firing, burn 5m 20.0x, 1h 20.0x; \
                 SLO shop/checkout-availability has 40.0% remaining), and the tier freezes on page burn. \
                 Still allowed: rolling back to a previous revision, and scaling. \
                 To ship anyway, ask a platform approver for a BudgetException selecting this Deployment in namespace shop."
            )
        );
    }

    #[test]
    fn a_relist_replaces_the_kind_only_when_it_completes() {
        let mut store = synced_store();
        store.apply(Watched::Namespace(Event::Init));
        store.apply(Watched::Namespace(Event::InitApply(namespace(
            "search",
            "discovery",
        ))));
        // Mid-relist the old view stays whole.
        assert!(store.index().team_of("shop").is_some());
        store.apply(Watched::Namespace(Event::InitDone));
        let index = store.index();
        assert_eq!(index.team_of("shop"), None);
        assert_eq!(
            index.team_of("search"),
            Some(("discovery".into(), "production".into()))
        );
    }

    #[test]
    fn deletes_and_updates_apply_at_once() {
        let mut store = synced_store();
        store.apply(Watched::Namespace(Event::Apply(namespace(
            "shop",
            "checkout-team",
        ))));
        assert_eq!(
            store.index().team_of("shop"),
            Some(("checkout-team".into(), "production".into()))
        );
        store.apply(Watched::Namespace(Event::Delete(namespace(
            "shop",
            "checkout-team",
        ))));
        assert_eq!(store.index().team_of("shop"), None);
    }

    #[test]
    fn an_invalid_policy_leaves_the_webhook_failing_open() {
        let mut store = synced_store();
        let mut broken = policy();
        broken.spec.default_tier = "nowhere".into();
        store.apply(Watched::Policy(Event::Apply(broken)));
        let index = store.index();
        assert!(index.policy.is_none());
        assert_eq!(index.budgets, Budgets::default());
    }

    #[test]
    fn a_listing_builds_the_index_the_watch_would_publish() {
        let watched = synced_store().index();
        let team = payments_budget();
        let release: Release = object(json!({
            "metadata": {"name": "checkout-3f9a1c0b2d", "namespace": "shop",
                         "creationTimestamp": "2026-11-29T10:00:00Z"},
            "spec": {"deployment": "checkout", "revision": "3f9a1c0b2d", "exception": "hotfix-4411"},
            "status": {"phase": "RolledBack"}
        }));
        let listing = Listing {
            namespaces: vec![namespace("shop", "payments")],
            policies: vec![policy()],
            team_budgets: vec![team],
            releases: vec![release],
            ..Listing::default()
        };
        let index = listing.index();
        assert_eq!(
            index.team_of("shop"),
            Some(("payments".into(), "production".into()))
        );
        assert_eq!(index.policy_name.as_deref(), Some("platform"));
        assert_eq!(
            index.budgets.teams[&("payments".to_owned(), "production".to_owned())],
            watched.budgets.teams[&("payments".to_owned(), "production".to_owned())]
        );
        let entry = &index.releases[&ObjectKey::new("shop", "checkout-3f9a1c0b2d")];
        assert_eq!(
            (
                entry.deployment.as_str(),
                entry.created,
                entry.phase,
                entry.exception.as_deref()
            ),
            (
                "checkout",
                Some("2026-11-29T10:00:00Z".parse().unwrap()),
                Some(crate::api::ReleasePhase::RolledBack),
                Some("hotfix-4411")
            )
        );
        // No SLO statuses were listed: no SLO budgets and no evaluation time.
        assert!(index.budgets.slos.is_empty());
        assert_eq!(index.budgets.evaluated_at, None);
    }
}
