//! Kubernetes label selector matching (`matchLabels` and `matchExpressions`).

use crate::api::LabelSelector;
use std::collections::BTreeMap;

/// Whether `labels` match `selector`. An empty selector matches everything; an operator
/// Kubernetes does not define matches nothing.
pub fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(matches(&LabelSelector::default(), &labels(&[])));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let s = LabelSelector {
            match_labels: Some(labels(&[("app", "checkout"), ("tier", "web")])),
            ..Default::default()
        };
        assert!(matches(
            &s,
            &labels(&[("app", "checkout"), ("tier", "web"), ("x", "y")])
        ));
        assert!(!matches(&s, &labels(&[("app", "checkout")])));
    }

    #[test]
    fn match_expressions_follow_kubernetes_operators() {
        let l = labels(&[("app", "checkout")]);
        let with = |e| LabelSelector {
            match_expressions: Some(vec![e]),
            ..Default::default()
        };
        assert!(matches(&with(expr("app", "In", &["checkout", "cart"])), &l));
        assert!(!matches(&with(expr("app", "NotIn", &["checkout"])), &l));
        assert!(matches(&with(expr("team", "NotIn", &["a"])), &l));
        assert!(matches(&with(expr("app", "Exists", &[])), &l));
        assert!(!matches(&with(expr("app", "DoesNotExist", &[])), &l));
        assert!(!matches(&with(expr("app", "Like", &["checkout"])), &l));
    }
}
