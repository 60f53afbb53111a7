//! AdmissionReview v1 on the wire.
//!
//! Own request and response shapes rather than `kube::core::admission`: its response
//! serializes `patch` as an array of bytes instead of base64, and its flattened review type
//! hides the field path of a parse error, which a malformed review's 400 must name.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct ReviewIn {
    api_version: String,
    kind: String,
    request: Option<AdmissionRequest>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub sub_resource: Option<String>,
    pub operation: Operation,
    #[serde(default)]
    pub user_info: UserInfo,
    #[serde(default, deserialize_with = "workload")]
    pub object: Option<Value>,
    #[serde(default, deserialize_with = "workload")]
    pub old_object: Option<Value>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    pub version: String,
    pub kind: String,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
pub struct UserInfo {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

/// An object of the review without what no decision reads: its `status` and
/// `metadata.managedFields` (on objects from the apiserver often half their size) are
/// skipped while parsing, never built.
fn workload<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<Value>, D::Error> {
    Option::<Workload>::deserialize(de).map(|o| o.map(|w| w.0))
}

struct Workload(Value);

impl<'de> Deserialize<'de> for Workload {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Workload, D::Error> {
        serde::de::DeserializeSeed::deserialize(Pruned::Object, de).map(Workload)
    }
}

/// Parses a JSON object, leaving unbuilt the keys no decision reads at its level.
#[derive(Clone, Copy)]
enum Pruned {
    Object,
    Metadata,
}

impl<'de> serde::de::DeserializeSeed<'de> for Pruned {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Pruned {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = match (self, key.as_str()) {
                (Pruned::Object, "status") | (Pruned::Metadata, "managedFields") => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    continue;
                }
                (Pruned::Object, "metadata") => map.next_value_seed(Pruned::Metadata)?,
                _ => map.next_value::<Value>()?,
            };
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Largest review accepted (controller-runtime's limit; the apiserver sends at most two
/// 3 MiB objects).
pub const MAX_REVIEW_BYTES: usize = 7 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReviewError {
    #[error("review is {0} bytes, over the 7 MiB limit")]
    TooLarge(usize),
    #[error("not an AdmissionReview: {0}")]
    Malformed(String),
}

/// Parses an AdmissionReview v1 request. Errors name the field path and position.
pub fn parse_review(bytes: &[u8]) -> Result<AdmissionRequest, ReviewError> {
    if bytes.len() > MAX_REVIEW_BYTES {
        return Err(ReviewError::TooLarge(bytes.len()));
    }
    // Fast path without path tracking; a failure is parsed again to say where. UTF-8 is
    // checked once for the whole body rather than string by string.
    let parsed = match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str::<ReviewIn>(text),
        Err(_) => serde_json::from_slice(bytes),
    };
    let review = match parsed {
        Ok(review) => review,
        Err(_) => return Err(explain(bytes)),
    };
    if review.api_version != API_VERSION || review.kind != KIND {
        return Err(ReviewError::Malformed(format!(
            "expected apiVersion {API_VERSION} kind {KIND}, got {} {}",
            review.api_version, review.kind
        )));
    }
    review
        .request
        .ok_or_else(|| ReviewError::Malformed("request: missing".into()))
}

/// The error of a review that failed to parse, with the field path.
fn explain(bytes: &[u8]) -> ReviewError {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let result: Result<ReviewIn, _> = serde_path_to_error::deserialize(de);
    let Err(e) = result else {
        return ReviewError::Malformed("unparseable".into());
    };
    {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ReviewError::Malformed(inner.to_string())
        } else {
            ReviewError::Malformed(format!("{path}: {inner}"))
        }
    }
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    pub uid: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
    /// RFC 6902 JSON patch, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Status {
    pub code: u16,
    pub message: String,
    pub reason: String,
}

impl AdmissionResponse {
    pub fn allow(uid: &str) -> Self {
        AdmissionResponse {
            uid: uid.to_owned(),
            allowed: true,
            status: None,
            warnings: Vec::new(),
            audit_annotations: BTreeMap::new(),
            patch_type: None,
            patch: None,
        }
    }

    pub fn deny(uid: &str, message: String) -> Self {
        AdmissionResponse {
            allowed: false,
            status: Some(Status {
                code: 403,
                message,
                reason: "Forbidden".into(),
            }),
            ..AdmissionResponse::allow(uid)
        }
    }

    /// Attaches a non-empty patch as base64 JSONPatch.
    pub fn with_patch(mut self, patch: &json_patch::Patch) -> Self {
        if !patch.0.is_empty() {
            // A Patch of plain JSON values always serializes.
            let bytes = serde_json::to_vec(patch).unwrap_or_default();
            self.patch_type = Some("JSONPatch");
            self.patch = Some(base64::engine::general_purpose::STANDARD.encode(bytes));
        }
        self
    }

    /// The whole AdmissionReview carrying this response.
    pub fn into_review(self) -> Value {
        serde_json::to_value(ReviewOut::new(&self)).unwrap_or(Value::Null)
    }

    /// The whole AdmissionReview carrying this response, as JSON bytes.
    pub fn review_bytes(&self) -> Vec<u8> {
        // Plain data always serializes.
        serde_json::to_vec(&ReviewOut::new(self)).unwrap_or_default()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReviewOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: &'a AdmissionResponse,
}

impl<'a> ReviewOut<'a> {
    fn new(response: &'a AdmissionResponse) -> Self {
        ReviewOut {
            api_version: API_VERSION,
            kind: KIND,
            response,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_review_names_the_field() {
        let e = parse_review(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":"PATCHUP"}}"#)
            .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "not an AdmissionReview: request.operation: unknown variant `PATCHUP`"
            ),
            "{e}"
        );
    }

    #[test]
    fn truncated_json_says_where() {
        let e = parse_review(br#"{"apiVersion":"admission.k8s.io/v1","kind":"Adm"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "not an AdmissionReview: kind: EOF while parsing a string at line 1 column 47"
        );
    }

    #[test]
    fn status_and_managed_fields_are_not_built() {
        let review = serde_json::json!({
            "apiVersion": API_VERSION, "kind": KIND,
            "request": {
                "uid": "u", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                "operation": "UPDATE",
                "object": {
                    "metadata": {"name": "web", "labels": {"app": "web"},
                        "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]},
                    "spec": {"replicas": 3, "status": "kept: not the object's status"},
                    "status": {"replicas": 3, "conditions": [{"type": "Available"}]}
                },
                "oldObject": null
            }
        });
        let request = parse_review(&serde_json::to_vec(&review).unwrap()).unwrap();
        assert_eq!(
            request.object,
            Some(serde_json::json!({
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {"replicas": 3, "status": "kept: not the object's status"}
            }))
        );
        assert_eq!(request.old_object, None);
    }

    #[test]
    fn an_object_that_is_not_an_object_says_where() {
        let e = parse_review(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":"CREATE","object":"web"}}"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "not an AdmissionReview: request.object: invalid type: string \"web\", expected a Kubernetes object at line 1 column 176"
        );
    }

    #[test]
    fn invalid_utf8_says_where() {
        let e = parse_review(b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"Adm\xff\"}")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "not an AdmissionReview: kind: invalid unicode code point at line 1 column 48"
        );
    }

    #[test]
    fn wrong_api_version_is_rejected() {
        let e = parse_review(
            br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":null}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "not an AdmissionReview: expected apiVersion admission.k8s.io/v1 kind AdmissionReview, got admission.k8s.io/v1beta1 AdmissionReview"
        );
    }

    #[test]
    fn oversized_review_is_rejected_before_parsing() {
        let big = vec![b' '; MAX_REVIEW_BYTES + 1];
        assert_eq!(
            parse_review(&big),
            Err(ReviewError::TooLarge(MAX_REVIEW_BYTES + 1))
        );
    }

    #[test]
    fn patch_is_base64_json_patch() {
        let patch: json_patch::Patch =
            serde_json::from_str(r#"[{"op":"add","path":"/spec/paused","value":true}]"#).unwrap();
        let r = AdmissionResponse::allow("u").with_patch(&patch);
        assert_eq!(r.patch_type, Some("JSONPatch"));
        assert_eq!(
            r.patch.as_deref(),
            Some("W3sib3AiOiJhZGQiLCJwYXRoIjoiL3NwZWMvcGF1c2VkIiwidmFsdWUiOnRydWV9XQ==")
        );
    }
}
