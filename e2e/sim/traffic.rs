//! What the simulator pretends each pod serves, as pure functions of the Pod object: the
//! Deployment and track it reports under, its behaviour (from its image tag) and how many
//! of a tick's requests fail. No I/O here.

use budgetgate::api::keys;
use k8s_openapi::api::core::v1::Pod;

/// Which side of a canary a pod is on (`track` label of the series).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Track {
    Stable,
    Canary,
}

impl Track {
    pub fn as_str(self) -> &'static str {
        match self {
            Track::Stable => "stable",
            Track::Canary => "canary",
        }
    }
}

/// How a pod's requests go, chosen by the first container's image tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Behaviour {
    /// No errors, ~50 ms.
    Healthy,
    /// Every 5th request answers 500 (exactly 20%), ~50 ms.
    Faulty,
    /// No errors, ~1.5 s: above the 0.3 s and 1 s buckets.
    Slow,
    /// Exactly this many requests in a million answer 500 (`-errP`, P percent), ~50 ms.
    Errors(u32),
}

impl Behaviour {
    pub fn latency_seconds(self) -> f64 {
        match self {
            Behaviour::Healthy | Behaviour::Faulty | Behaviour::Errors(_) => 0.05,
            Behaviour::Slow => 1.5,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Behaviour::Healthy => "healthy",
            Behaviour::Faulty => "faulty",
            Behaviour::Slow => "slow",
            Behaviour::Errors(_) => "errors",
        }
    }
}

/// The image's tag (`example/web:1.1-faulty` → `1.1-faulty`); none for an untagged or
/// digest-only reference. A registry port (`registry:5000/web`) is not a tag.
pub fn image_tag(image: &str) -> Option<&str> {
    let name = image.split('@').next().unwrap_or(image);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.rsplit_once(':').map(|(_, tag)| tag)
}

pub fn behaviour_of(image: &str) -> Behaviour {
    match image_tag(image) {
        Some(tag) if tag.ends_with("-faulty") => Behaviour::Faulty,
        Some(tag) if tag.ends_with("-slow") => Behaviour::Slow,
        Some(tag) => tag
            .rsplit_once("-err")
            .and_then(|(_, percent)| error_ppm(percent))
            .map_or(Behaviour::Healthy, Behaviour::Errors),
        None => Behaviour::Healthy,
    }
}

/// `5` → 50,000 per million, `0.2` → 2,000; none for anything but a percent in (0, 100]
/// with at most four decimals (such a tag is a healthy image).
fn error_ppm(percent: &str) -> Option<u32> {
    if percent.is_empty() || !percent.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let (int, frac) = percent.split_once('.').unwrap_or((percent, ""));
    if frac.len() > 4 || int.is_empty() && frac.is_empty() {
        return None;
    }
    let int: u32 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let frac: u32 = format!("{frac:0<4}").parse().ok()?;
    let ppm = int.checked_mul(10_000)?.checked_add(frac)?;
    (1..=1_000_000).contains(&ppm).then_some(ppm)
}

/// Errors among requests number `sent + 1 ..= sent + n` of a pod: every 5th request of a
/// faulty pod fails, so over any run exactly 20% do, whatever the tick size.
pub fn errors_in(behaviour: Behaviour, sent: u64, n: u64) -> u64 {
    match behaviour {
        Behaviour::Faulty => (sent + n) / 5 - sent / 5,
        Behaviour::Errors(ppm) => {
            let upto = |k: u64| k * u64::from(ppm) / 1_000_000;
            upto(sent + n) - upto(sent)
        }
        Behaviour::Healthy | Behaviour::Slow => 0,
    }
}

/// Labels of a pod's series.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    pub namespace: String,
    pub deployment: String,
    pub pod: String,
    pub track: &'static str,
}

/// A pod that serves traffic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serving {
    pub key: PodKey,
    pub image: String,
    pub behaviour: Behaviour,
}

/// The Deployment a pod reports under, and its track. The owning ReplicaSet's name minus
/// `-<pod-template-hash>`; a canary pod (`budgetgate.dev/track: canary`) belongs to the
/// Deployment `<name>-canary` and reports as `<name>` on track `canary`. None for pods no
/// ReplicaSet controls (bare pods, StatefulSets, Jobs): they serve nothing here.
pub fn deployment_of(pod: &Pod) -> Option<(String, Track)> {
    let owner = pod
        .metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|o| o.kind == "ReplicaSet" && o.controller == Some(true))?;
    let labels = pod.metadata.labels.as_ref();
    let hash = labels.and_then(|l| l.get(keys::POD_TEMPLATE_HASH));
    let name = match hash {
        Some(hash) => owner
            .name
            .strip_suffix(hash.as_str())
            .and_then(|n| n.strip_suffix('-'))
            .unwrap_or(&owner.name),
        None => &owner.name,
    };
    let canary = labels
        .and_then(|l| l.get(keys::TRACK))
        .is_some_and(|t| t == "canary");
    if canary {
        let stable = name.strip_suffix("-canary").unwrap_or(name);
        Some((stable.to_owned(), Track::Canary))
    } else {
        Some((name.to_owned(), Track::Stable))
    }
}

/// Ready (condition `Ready=True`) and not being deleted.
pub fn is_serving(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// What the pod serves, if it serves.
pub fn serving(pod: &Pod) -> Option<Serving> {
    if !is_serving(pod) {
        return None;
    }
    let (deployment, track) = deployment_of(pod)?;
    let image = pod
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()
        .unwrap_or_default();
    Some(Serving {
        key: PodKey {
            namespace: pod.metadata.namespace.clone()?,
            deployment,
            pod: pod.metadata.name.clone()?,
            track: track.as_str(),
        },
        behaviour: behaviour_of(&image),
        image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mk_pod(rs: &str, hash: &str, track: Option<&str>, image: &str, ready: bool) -> Pod {
        let mut labels = json!({"app": "web", "pod-template-hash": hash});
        if let Some(t) = track {
            labels["budgetgate.dev/track"] = json!(t);
        }
        serde_json::from_value(json!({
            "metadata": {
                "name": format!("{rs}-abcde"), "namespace": "shop", "labels": labels,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                     "uid": "u1", "controller": true}]
            },
            "spec": {"containers": [{"name": "web", "image": image}, {"name": "proxy", "image": "envoy:1-faulty"}]},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap()
    }

    #[test]
    fn deployment_is_the_replica_set_name_without_the_template_hash() {
        let pod = mk_pod(
            "web-api-7d9f8b6c5",
            "7d9f8b6c5",
            None,
            "example/web:1.0",
            true,
        );
        assert_eq!(deployment_of(&pod), Some(("web-api".into(), Track::Stable)));
    }

    #[test]
    fn canary_pod_reports_the_stable_deployment_on_the_canary_track() {
        let pod = mk_pod(
            "web-canary-5f6c7d8e9",
            "5f6c7d8e9",
            Some("canary"),
            "example/web:2",
            true,
        );
        assert_eq!(deployment_of(&pod), Some(("web".into(), Track::Canary)));
    }

    #[test]
    fn pod_without_a_controlling_replica_set_serves_nothing() {
        let mut pod = mk_pod("web-7d9f8b6c5", "7d9f8b6c5", None, "example/web:1.0", true);
        pod.metadata.owner_references = None;
        assert_eq!(deployment_of(&pod), None);
        assert_eq!(serving(&pod), None);
    }

    #[test]
    fn unready_and_terminating_pods_do_not_serve() {
        let unready = mk_pod("web-7d9f8b6c5", "7d9f8b6c5", None, "example/web:1.0", false);
        assert!(!is_serving(&unready));
        let mut terminating = mk_pod("web-7d9f8b6c5", "7d9f8b6c5", None, "example/web:1.0", true);
        terminating.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-11-29T10:00:00Z".parse().unwrap(),
            ));
        assert!(!is_serving(&terminating));
    }

    #[test]
    fn behaviour_comes_from_the_first_containers_image_tag() {
        let pod = mk_pod(
            "web-7d9f8b6c5",
            "7d9f8b6c5",
            None,
            "example/web:1.1-faulty",
            true,
        );
        let s = serving(&pod).unwrap();
        assert_eq!(s.behaviour, Behaviour::Faulty);
        assert_eq!(
            s.key,
            PodKey {
                namespace: "shop".into(),
                deployment: "web".into(),
                pod: "web-7d9f8b6c5-abcde".into(),
                track: "stable"
            }
        );
        let healthy = mk_pod("web-7d9f8b6c5", "7d9f8b6c5", None, "example/web:1.0", true);
        assert_eq!(serving(&healthy).unwrap().behaviour, Behaviour::Healthy);
    }

    #[test]
    fn behaviour_of_image_tags() {
        assert_eq!(behaviour_of("example/web:1.1-faulty"), Behaviour::Faulty);
        assert_eq!(behaviour_of("example/web:1.1-slow"), Behaviour::Slow);
        assert_eq!(behaviour_of("example/web:1.2"), Behaviour::Healthy);
        assert_eq!(behaviour_of("example/web"), Behaviour::Healthy);
        // a registry port or a repository name is no tag
        assert_eq!(behaviour_of("registry:5000/web-faulty"), Behaviour::Healthy);
        assert_eq!(
            behaviour_of("example/web-slow@sha256:abc"),
            Behaviour::Healthy
        );
        assert_eq!(
            behaviour_of("registry:5000/web:2-slow@sha256:abc"),
            Behaviour::Slow
        );
    }

    #[test]
    fn err_tags_fail_exactly_their_percent_whatever_the_tick() {
        assert_eq!(
            behaviour_of("example/web:1.1-err5"),
            Behaviour::Errors(50_000)
        );
        assert_eq!(
            behaviour_of("example/web:1.0-err0.2"),
            Behaviour::Errors(2_000)
        );
        assert_eq!(
            behaviour_of("example/web:2-err12.5"),
            Behaviour::Errors(125_000)
        );
        assert_eq!(
            behaviour_of("example/web:2-err100"),
            Behaviour::Errors(1_000_000)
        );
        for healthy in [
            "web:1-err0",
            "web:1-errx",
            "web:1-err101",
            "web:1-err",
            "web:1-err0.00001",
        ] {
            assert_eq!(behaviour_of(healthy), Behaviour::Healthy, "{healthy}");
        }
        for (ppm, want) in [(50_000, 500), (2_000, 20)] {
            // 10,000 requests in uneven ticks
            let (mut sent, mut errors) = (0, 0);
            for n in [1, 7, 13, 999, 2, 4000, 4978].into_iter().cycle().take(7) {
                errors += errors_in(Behaviour::Errors(ppm), sent, n);
                sent += n;
            }
            assert_eq!((sent, errors), (10_000, want));
        }
    }

    #[test]
    fn faulty_pods_fail_exactly_one_request_in_five_whatever_the_tick() {
        assert_eq!(errors_in(Behaviour::Faulty, 0, 20), 4);
        assert_eq!(errors_in(Behaviour::Faulty, 0, 4), 0);
        assert_eq!(errors_in(Behaviour::Faulty, 4, 1), 1);
        // 1000 requests in uneven ticks: exactly 200 errors
        let (mut sent, mut errors) = (0, 0);
        for n in [3, 7, 1, 13, 976] {
            errors += errors_in(Behaviour::Faulty, sent, n);
            sent += n;
        }
        assert_eq!((sent, errors), (1000, 200));
        assert_eq!(errors_in(Behaviour::Healthy, 0, 1000), 0);
        assert_eq!(errors_in(Behaviour::Slow, 0, 1000), 0);
    }

    #[test]
    fn slow_pods_answer_above_the_latency_thresholds() {
        assert!(Behaviour::Slow.latency_seconds() > 1.0);
        assert!(Behaviour::Healthy.latency_seconds() <= 0.1);
    }
}
