//! Exact canary weights on the user's HTTPRoute (DESIGN §7.9): what one look reads of the
//! route and the Services, and the writes of [`crate::rollout::route`] carried out in the
//! order that keeps every rule of the route with ready backends — the canary Service and its
//! endpoints before a weight names it, weight 0 before the canary goes, the stable
//! Service's selector given back only once the canary's pods are gone or promoted.

use super::RolloutError;
use super::op::{Op, delete_owned, merge_params};
use crate::api::ReleaseStatus;
use crate::controller::FIELD_MANAGER;
use crate::rollout::route::{self, Acceptance, RouteRef, ServiceState};
use crate::rollout::{self, CanaryService, Routing};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::runtime::events::EventType;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What one look found of a Deployment's routing.
pub(crate) struct Found {
    pub view: Routing,
    pub refs: Option<RouteRef>,
    /// The route as JSON, when it exists.
    pub route: Option<Value>,
    pub stable: Option<Service>,
    pub canary_service: ServiceState,
    /// `pod-template-hash` of the stable ReplicaSet, while a canary runs.
    pub stable_hash: Option<String>,
    pub acceptance: Acceptance,
}

pub(crate) fn http_routes(client: Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    };
    Api::namespaced_with(client, namespace, &resource)
}

/// Reads the routing of `d` when it asks for one (`None` without the annotations).
pub(crate) async fn gather(
    client: &Client,
    d: &Deployment,
    canary_revision: Option<&str>,
) -> Result<Option<Found>, RolloutError> {
    let Some(refs) = route::route_ref(&d.metadata) else {
        return Ok(None);
    };
    let namespace = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let refs = match refs {
        Ok(r) => r,
        Err(why) => {
            return Ok(Some(Found {
                view: Routing {
                    broken: Some(why),
                    ..Routing::default()
                },
                refs: None,
                route: None,
                stable: None,
                canary_service: ServiceState::Absent,
                stable_hash: None,
                acceptance: Acceptance::Unreported,
            }));
        }
    };
    let route = match http_routes(client.clone(), &namespace)
        .get_opt(&refs.route)
        .await
    {
        Ok(r) => r.map(|r| serde_json::to_value(r).unwrap_or(Value::Null)),
        // Without the Gateway API CRDs the route cannot exist.
        Err(kube::Error::Api(e)) if e.code == 404 => None,
        Err(e) => {
            return Err(RolloutError::read(format!(
                "HTTPRoute {namespace}/{}",
                refs.route
            ))(e));
        }
    };
    let services = Api::<Service>::namespaced(client.clone(), &namespace);
    let stable = services
        .get_opt(&refs.service)
        .await
        .map_err(RolloutError::read(format!(
            "Service {namespace}/{}",
            refs.service
        )))?;
    let canary_name = route::canary_service_name(&refs.service);
    let canary_service = services
        .get_opt(&canary_name)
        .await
        .map_err(RolloutError::read(format!(
            "Service {namespace}/{canary_name}"
        )))?;
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let canary_service = route::canary_service_state(canary_service.as_ref(), &uid);
    let stable_hash = match canary_revision {
        Some(revision) => stable_hash(client, d, revision).await?,
        None => None,
    };
    let acceptance = route
        .as_ref()
        .map_or(Acceptance::Unreported, route::acceptance);
    let broken = problem(
        &namespace,
        &name,
        &refs,
        route.as_ref(),
        stable.as_ref(),
        &canary_service,
        canary_revision.is_some() && stable_hash.is_none(),
    );
    let weight = match (&route, &stable, &canary_service, &stable_hash) {
        (Some(r), Some(s), ServiceState::Owned { .. }, Some(hash))
            if route::is_restricted(s, &name, hash) =>
        {
            route::canary_weight(r, &refs.service, &canary_name)
        }
        _ => None,
    };
    let service = match (&canary_service, &stable, &stable_hash) {
        (ServiceState::Owned { .. }, Some(s), Some(hash))
            if route::is_restricted(s, &name, hash) =>
        {
            if has_ready_endpoint(client, &namespace, &canary_name).await? {
                CanaryService::Ready
            } else {
                CanaryService::Unready
            }
        }
        _ => CanaryService::Missing,
    };
    let leftovers = route
        .as_ref()
        .is_some_and(|r| route::has_canary_refs(r, &canary_name))
        || matches!(canary_service, ServiceState::Owned { .. });
    let restricted = stable
        .as_ref()
        .is_some_and(|s| route::restricted_for(s) == Some(name.as_str()));
    Ok(Some(Found {
        view: Routing {
            broken,
            weight,
            service,
            leftovers,
            restricted,
        },
        refs: Some(refs),
        route,
        stable,
        canary_service,
        stable_hash,
        acceptance,
    }))
}

fn problem(
    namespace: &str,
    deployment: &str,
    refs: &RouteRef,
    route: Option<&Value>,
    stable: Option<&Service>,
    canary_service: &ServiceState,
    no_stable_pods: bool,
) -> Option<String> {
    let Some(route) = route else {
        return Some(format!("HTTPRoute {namespace}/{} not found", refs.route));
    };
    let Some(stable) = stable else {
        return Some(format!("Service {namespace}/{} not found", refs.service));
    };
    if let Some(why) = route::stable_service_problem(stable) {
        return Some(why);
    }
    if route::managed_rules(route, &refs.service).is_empty() {
        return Some(format!(
            "HTTPRoute {namespace}/{} has no rule whose backendRefs name Service {}",
            refs.route, refs.service
        ));
    }
    if let ServiceState::Foreign { owner } = canary_service {
        return Some(format!(
            "Service {namespace}/{} exists and is not controlled by {deployment} ({}); budgetgate never changes or deletes it",
            route::canary_service_name(&refs.service),
            rollout::objects::owner_text(owner.as_deref())
        ));
    }
    if no_stable_pods {
        return Some(format!(
            "Deployment {deployment} has no stable ReplicaSet to keep Service {} to",
            refs.service
        ));
    }
    None
}

/// Whether Service `service` has a ready, not terminating endpoint (its EndpointSlices).
async fn has_ready_endpoint(
    client: &Client,
    namespace: &str,
    service: &str,
) -> Result<bool, RolloutError> {
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={service}")))
        .await
        .map_err(RolloutError::read(format!(
            "the EndpointSlices of Service {namespace}/{service}"
        )))?;
    Ok(slices.items.iter().any(|s| {
        s.endpoints.iter().any(|e| {
            e.conditions
                .as_ref()
                .is_none_or(|c| c.ready != Some(false) && c.terminating != Some(true))
        })
    }))
}

/// The `pod-template-hash` of the ReplicaSet that serves while the canary runs: the
/// newest of the Deployment's (by uid) that is not the canary's revision and has pods.
async fn stable_hash(
    client: &Client,
    d: &Deployment,
    canary_revision: &str,
) -> Result<Option<String>, RolloutError> {
    let namespace = d.namespace().unwrap_or_default();
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let sets = Api::<ReplicaSet>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default())
        .await
        .map_err(RolloutError::read(format!(
            "the ReplicaSets of {namespace}"
        )))?;
    Ok(rollout::objects::stable_hash(
        &sets.items,
        &uid,
        canary_revision,
    ))
}

impl Op<'_> {
    fn found(&self) -> Option<(&Found, &RouteRef)> {
        let found = self.gathered.routing.as_ref()?;
        Some((found, found.refs.as_ref()?))
    }

    fn services(&self) -> Api<Service> {
        Api::namespaced(self.ctx.client.clone(), &self.key.namespace)
    }

    /// Stage `stage` at `weight`: the canary Service, the stable Service kept to the stable
    /// pods, then the weights. A weight names the canary Service only once it has a ready
    /// endpoint (the next look sets it otherwise).
    pub(super) async fn sync_traffic(
        &self,
        release: &str,
        stage: usize,
        weight: u32,
    ) -> Result<(), RolloutError> {
        let Some((found, refs)) = self.found() else {
            return Ok(());
        };
        let (Some(route), Some(stable), Some(hash)) =
            (&found.route, &found.stable, &found.stable_hash)
        else {
            return Ok(());
        };
        let ns = &self.key.namespace;
        let canary_name = route::canary_service_name(&refs.service);
        let services = self.services();
        let what = format!("applying the canary Service {ns}/{canary_name}");
        match &found.canary_service {
            ServiceState::Absent => {
                let object = route::canary_service(
                    stable,
                    self.deployment,
                    &route::stable_weights(route, &refs.service),
                    None,
                );
                services
                    .create(
                        &PostParams {
                            field_manager: Some(FIELD_MANAGER.into()),
                            ..Default::default()
                        },
                        &object,
                    )
                    .await
                    .map_err(RolloutError::write(what))?;
                self.event(
                    EventType::Normal,
                    "CanaryServiceCreated",
                    format!(
                        "Service {canary_name} selects the canary's pods (Service {}'s selector plus {}=canary)",
                        refs.service,
                        crate::api::keys::TRACK
                    ),
                )
                .await;
            }
            ServiceState::Owned {
                uid,
                stable_weights,
            } => {
                let object =
                    route::canary_service(stable, self.deployment, stable_weights, Some(uid));
                services
                    .patch(
                        &canary_name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&object),
                    )
                    .await
                    .map_err(RolloutError::write(what))?;
            }
            ServiceState::Foreign { .. } => return Ok(()),
        }
        if !route::is_restricted(stable, &self.key.name, hash) {
            let Some(patch) = route::restrict_patch(stable, &self.key.name, hash) else {
                return Ok(());
            };
            services
                .patch(&refs.service, &merge_params(), &Patch::Merge(&patch))
                .await
                .map_err(RolloutError::write(format!(
                    "keeping the canary's pods out of Service {ns}/{}",
                    refs.service
                )))?;
        }
        // A weight names the canary Service only once it has a ready endpoint (the state
        // machine waits for it; this look only put the Service in place).
        if weight > 0 && found.view.service != CanaryService::Ready {
            return Ok(());
        }
        if let Some(patch) = route::weights_patch(route, &refs.service, &canary_name, weight) {
            self.patch_route(&refs.route, patch).await?;
        }
        self.set_weight_metric(weight);
        let text = self.traffic_text(refs, weight);
        self.release_status(
            release,
            json!({"status": ReleaseStatus {
                weight: Some(weight),
                traffic: Some(text.clone()),
                ..ReleaseStatus::default()
            }}),
        )
        .await?;
        self.event(
            EventType::Normal,
            "TrafficShifted",
            format!("stage {stage}: {text}"),
        )
        .await;
        Ok(())
    }

    /// The Release's `traffic` once promoted.
    pub(super) fn promoted_traffic_text(&self) -> Option<String> {
        let (_, refs) = self.found()?;
        Some(format!(
            "HTTPRoute {}: 100% to Service {} (the stable and the promoted pods), 0% to Service {}",
            refs.route,
            refs.service,
            route::canary_service_name(&refs.service)
        ))
    }

    fn traffic_text(&self, refs: &RouteRef, weight: u32) -> String {
        let stable = self.gathered.view.replicas;
        let canary = rollout::route::canary_replicas(stable, weight);
        let pods = |n: u32| {
            if n == 1 {
                "1 pod".to_owned()
            } else {
                format!("{n} pods")
            }
        };
        let accepted = self
            .gathered
            .routing
            .as_ref()
            .map_or(String::new(), |f| f.acceptance.text());
        format!(
            "HTTPRoute {}: {}% to Service {} ({}), {weight}% to Service {} ({}); {accepted}",
            refs.route,
            100 - weight,
            refs.service,
            pods(stable),
            route::canary_service_name(&refs.service),
            pods(canary),
        )
    }

    /// A JSON patch of the route (its first operation tests the resourceVersion it was
    /// computed from); the route as it is after the patch.
    async fn patch_route(&self, name: &str, patch: Value) -> Result<Value, RolloutError> {
        let what = format!(
            "setting the weights of HTTPRoute {}/{name}",
            self.key.namespace
        );
        let patch: json_patch::Patch =
            serde_json::from_value(patch).map_err(|source| RolloutError::Encode {
                what: what.clone(),
                source,
            })?;
        let routes = http_routes(self.ctx.client.clone(), &self.key.namespace);
        let after = routes
            .patch(name, &merge_params(), &Patch::Json::<()>(patch))
            .await
            .map_err(RolloutError::write(what))?;
        Ok(serde_json::to_value(after).unwrap_or(Value::Null))
    }

    fn set_weight_metric(&self, weight: u32) {
        self.ctx
            .shared
            .metrics
            .canary_weight
            .get_or_create(&self.stage_labels())
            .set(i64::from(weight));
    }

    /// Before a rollback touches anything else: the canary gets weight 0. Returns the
    /// route as it is afterwards.
    pub(super) async fn traffic_off_the_canary(&self) -> Result<Option<Value>, RolloutError> {
        let Some((found, refs)) = self.found() else {
            return Ok(None);
        };
        let Some(route) = &found.route else {
            return Ok(None);
        };
        let canary_name = route::canary_service_name(&refs.service);
        if !route::has_canary_refs(route, &canary_name) {
            return Ok(Some(route.clone()));
        }
        let after = match route::weights_patch(route, &refs.service, &canary_name, 0) {
            Some(patch) => self.patch_route(&refs.route, patch).await?,
            None => route.clone(),
        };
        self.set_weight_metric(0);
        self.event(
            EventType::Normal,
            "TrafficShifted",
            format!(
                "HTTPRoute {}: 100% to Service {}, 0% to Service {canary_name}",
                refs.route, refs.service
            ),
        )
        .await;
        Ok(Some(after))
    }

    /// Promotion: the stable Service takes every pod of the Deployment again (the canary's
    /// pods run the promoted revision), and the canary's weight goes to 0.
    pub(super) async fn traffic_to_the_promoted(&self) -> Result<(), RolloutError> {
        let Some((found, refs)) = self.found() else {
            return Ok(());
        };
        self.give_back_the_stable_service(found, refs).await?;
        self.traffic_off_the_canary().await?;
        Ok(())
    }

    async fn give_back_the_stable_service(
        &self,
        found: &Found,
        refs: &RouteRef,
    ) -> Result<(), RolloutError> {
        if let Some(stable) = &found.stable
            && let Some(patch) = route::unrestrict_patch(stable, &self.key.name)
        {
            self.services()
                .patch(&refs.service, &merge_params(), &Patch::Merge(&patch))
                .await
                .map_err(RolloutError::write(format!(
                    "giving Service {}/{} its own selector back",
                    self.key.namespace, refs.service
                )))?;
        }
        Ok(())
    }

    /// The canary's references leave the route (the stable weights from before come
    /// back), the canary Service goes, and — once no canary pod is left or when
    /// `canary_gone` — the stable Service gets its own selector back. `route` is the route
    /// as the last write left it.
    pub(super) async fn remove_traffic(
        &self,
        route: Option<Value>,
        canary_gone: bool,
    ) -> Result<(), RolloutError> {
        let Some((found, refs)) = self.found() else {
            return Ok(());
        };
        let canary_name = route::canary_service_name(&refs.service);
        let before: BTreeMap<usize, Option<u64>> = match &found.canary_service {
            ServiceState::Owned { stable_weights, .. } => stable_weights.clone(),
            _ => BTreeMap::new(),
        };
        if let Some(route) = route.or_else(|| found.route.clone())
            && let Some(patch) = route::removal_patch(&route, &refs.service, &canary_name, &before)
        {
            self.patch_route(&refs.route, patch).await?;
            self.event(
                EventType::Normal,
                "TrafficRestored",
                format!(
                    "HTTPRoute {}: the canary's backendRefs removed, Service {} has its weight from before the rollout",
                    refs.route, refs.service
                ),
            )
            .await;
        }
        if let ServiceState::Owned { uid, .. } = &found.canary_service {
            delete_owned(
                &self.services(),
                &canary_name,
                uid,
                DeleteParams::default(),
                format!(
                    "deleting the canary Service {}/{canary_name}",
                    self.key.namespace
                ),
            )
            .await?;
        }
        if canary_gone || self.gathered.canary.owned().is_none() {
            self.give_back_the_stable_service(found, refs).await?;
        }
        self.ctx
            .shared
            .metrics
            .canary_weight
            .remove(&self.stage_labels());
        Ok(())
    }
}
