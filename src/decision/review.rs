//! AdmissionReview v1 on the wire.
//!
//! Own request and response shapes rather than `kube::core::admission`: its response
//! serializes `patch` as an array of bytes instead of base64, and its flattened review type
//! hides the field path of a parse error, which a malformed review's 400 must name.

use super::canonical::Template;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
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

#[derive(Deserialize, Clone, Debug, PartialEq)]
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
    #[serde(default)]
    pub object: Option<Object>,
    #[serde(default)]
    pub old_object: Option<Object>,
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

/// An object of a review, as decisions read it: its `status` and
/// `metadata.managedFields` (on objects from the apiserver often half their size) are
/// skipped while parsing, never built, and its pod template (`spec.template`, most of what
/// is left) is kept as the JSON text it arrived as, for [`Template`] to compare and hash
/// without building it as a `Value`.
#[derive(Clone, Debug)]
pub struct Object {
    /// The object without `spec.template`.
    value: Value,
    template: Option<Box<RawValue>>,
}

impl Object {
    /// An object from its JSON value.
    pub fn new(mut value: Value) -> Object {
        let template = value
            .get_mut("spec")
            .and_then(Value::as_object_mut)
            .and_then(|spec| spec.remove("template"))
            // A `Value` always serializes.
            .and_then(|t| serde_json::value::to_raw_value(&t).ok());
        Object { value, template }
    }

    /// Everything but `spec.template`.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The JSON text of `spec.template`.
    pub fn template(&self) -> Option<&str> {
        self.template.as_deref().map(RawValue::get)
    }

    /// The pod template in canonical form; `null` for an object without one.
    pub(super) fn canonical_template(&self) -> Template<'_> {
        self.template()
            .and_then(Template::parse)
            .unwrap_or(Template::NULL)
    }

    /// The revision hash of the pod template (Appendix A), as
    /// [`super::workload_revision`] computes it from the object's `Value`.
    pub fn revision(&self) -> String {
        self.canonical_template().revision()
    }

    /// The whole object again, pod template included.
    #[cfg(test)]
    pub fn to_value(&self) -> Value {
        let mut value = self.value.clone();
        if let (Some(spec), Some(template)) = (
            value.get_mut("spec").and_then(Value::as_object_mut),
            self.template(),
        ) {
            // Text that was parsed once parses again.
            let template = serde_json::from_str(template).unwrap_or(Value::Null);
            spec.insert("template".into(), template);
        }
        value
    }
}

impl From<Value> for Object {
    fn from(value: Value) -> Object {
        Object::new(value)
    }
}

impl PartialEq for Object {
    fn eq(&self, other: &Object) -> bool {
        self.value == other.value
            && self.template().map(Template::parse) == other.template().map(Template::parse)
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Object, D::Error> {
        de.deserialize_map(ObjectVisitor)
    }
}

struct ObjectVisitor;

/// Parses an object, or its metadata or spec, leaving unbuilt what no decision reads.
#[derive(Clone, Copy)]
enum Pruned {
    Object,
    Metadata,
    Spec,
}

/// What [`Pruned`] parsed: a value and, for a spec, its template's text.
type Parsed = (Value, Option<Box<RawValue>>);

impl<'de> serde::de::DeserializeSeed<'de> for Pruned {
    type Value = Parsed;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Parsed, D::Error> {
        match self {
            Pruned::Spec => de.deserialize_any(self),
            _ => de.deserialize_map(self),
        }
    }
}

impl<'de> serde::de::Visitor<'de> for Pruned {
    type Value = Parsed;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            Pruned::Object => "a Kubernetes object",
            Pruned::Metadata => "object metadata",
            Pruned::Spec => "the spec of a Kubernetes object",
        })
    }

    /// `spec: null`.
    fn visit_unit<E>(self) -> Result<Parsed, E> {
        Ok((Value::Null, None))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut out = serde_json::Map::new();
        let mut template = None;
        while let Some(key) = map.next_key::<String>()? {
            let value = match (self, key.as_str()) {
                (Pruned::Object, "status") | (Pruned::Metadata, "managedFields") => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    continue;
                }
                (Pruned::Spec, "template") => {
                    template = Some(map.next_value::<Box<RawValue>>()?);
                    continue;
                }
                (Pruned::Object, "metadata") => map.next_value_seed(Pruned::Metadata)?.0,
                (Pruned::Object, "spec") => {
                    let (spec, spec_template) = map.next_value_seed(Pruned::Spec)?;
                    template = spec_template;
                    spec
                }
                _ => map.next_value::<Value>()?,
            };
            out.insert(key, value);
        }
        Ok((Value::Object(out), template))
    }
}

impl<'de> serde::de::Visitor<'de> for ObjectVisitor {
    type Value = Object;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        serde::de::Visitor::expecting(&Pruned::Object, f)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Object, A::Error> {
        let (value, template) = serde::de::Visitor::visit_map(Pruned::Object, map)?;
        Ok(Object { value, template })
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
    // checked once for the whole body rather than string by string, and anywhere in it:
    // the strings a review's parse skips (options, status) are not checked by serde_json,
    // and a body that is not JSON is no review even where budgetgate does not read.
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            return Err(match explain(bytes) {
                ReviewError::Malformed(why) if why != UNPARSEABLE => ReviewError::Malformed(why),
                _ => ReviewError::Malformed(format!("invalid UTF-8 at byte {}", e.valid_up_to())),
            });
        }
    };
    let review = match serde_json::from_str::<ReviewIn>(text) {
        Ok(review) => review,
        Err(_) => return Err(explain(bytes)),
    };
    // Likewise serde_json checks `\u` escapes only in the strings it decodes: half of a
    // surrogate pair in a skipped field would pass. A body that may hold one is checked
    // whole; the apiserver writes non-ASCII as UTF-8, never as escapes, so this is rare.
    if may_hold_surrogate_escape(bytes)
        && let Err(e) = serde_json::from_str::<EveryString>(text)
    {
        return Err(ReviewError::Malformed(e.to_string()));
    }
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

const UNPARSEABLE: &str = "unparseable";

/// Whether the body may hold an escape of a UTF-16 surrogate (`\uD800`-`\uDFFF`): a
/// backslash, `u`, then `d` or `D`. It over-approximates (`\uD000`, an escaped backslash
/// before a `u`) and only decides whether the body is checked whole.
fn may_hold_surrogate_escape(bytes: &[u8]) -> bool {
    memchr::memmem::find_iter(bytes, b"\\u")
        .any(|at| bytes.get(at + 2).is_some_and(|&b| b | 0x20 == b'd'))
}

/// A walk over a whole JSON body that decodes every string and keeps nothing: unlike a
/// `serde_json::Value`, it checks what the typed parse skips without building the body
/// again in memory (a 7 MiB array of numbers would be ~16× that as a `Value`).
struct EveryString;

impl<'de> Deserialize<'de> for EveryString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EveryString)
    }
}

impl<'de> serde::de::Visitor<'de> for EveryString {
    type Value = EveryString;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<EveryString>()?.is_some() {}
        Ok(self)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        while map.next_key::<EveryString>()?.is_some() {
            map.next_value::<EveryString>()?;
        }
        Ok(self)
    }
}

/// The error of a review that failed to parse, with the field path.
fn explain(bytes: &[u8]) -> ReviewError {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let result: Result<ReviewIn, _> = serde_path_to_error::deserialize(de);
    let Err(e) = result else {
        return ReviewError::Malformed(UNPARSEABLE.into());
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
    fn status_and_managed_fields_are_not_built_and_the_template_stays_text() {
        let review = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
            "uid":"u","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":"UPDATE",
            "object":{
                "metadata":{"name":"web","labels":{"app":"web"},
                    "managedFields":[{"manager":"kubectl","fieldsV1":{"f:spec":{}}}]},
                "spec":{"replicas":3,"status":"kept: not the object's status",
                    "template":{ "spec" : {"containers":[{"name":"app","image":"web:v2"}]},"metadata":{"labels":{"app":"web"}}}},
                "status":{"replicas":3,"conditions":[{"type":"Available"}]}},
            "oldObject":null}}"#;
        let request = parse_review(review).unwrap();
        let object = request.object.unwrap();
        assert_eq!(
            object.value(),
            &serde_json::json!({
                "metadata": {"name": "web", "labels": {"app": "web"}},
                "spec": {"replicas": 3, "status": "kept: not the object's status"}
            })
        );
        assert_eq!(
            object.template(),
            Some(
                r#"{ "spec" : {"containers":[{"name":"app","image":"web:v2"}]},"metadata":{"labels":{"app":"web"}}}"#
            )
        );
        let whole = object.to_value();
        assert_eq!(
            whole["spec"]["template"]["spec"]["containers"][0]["image"],
            "web:v2"
        );
        assert_eq!(
            object.revision(),
            crate::decision::workload_revision(&whole)
        );
        assert_eq!(Object::new(whole.clone()).to_value(), whole);
        assert_eq!(request.old_object, None);
    }

    #[test]
    fn a_malformed_template_says_where() {
        let e = parse_review(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":"CREATE","object":{"spec":{"template":{"spec":[}}}}}"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "not an AdmissionReview: request.object.spec.template: expected value at line 1 column 201"
        );
        let e = parse_review(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","kind":{"group":"apps","version":"v1","kind":"Deployment"},"operation":"CREATE","object":{"spec":7}}}"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "not an AdmissionReview: request.object.spec: invalid type: integer `7`, expected the spec of a Kubernetes object at line 1 column 180"
        );
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
    fn invalid_utf8_where_the_parse_does_not_read_is_rejected_too() {
        // serde_json skips the strings of fields it ignores without checking them.
        let e = parse_review(
            b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\",\"ignored\":\"\xff\",\"request\":null}",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "not an AdmissionReview: invalid UTF-8 at byte 72"
        );
    }

    #[test]
    fn half_a_surrogate_pair_where_the_parse_does_not_read_is_rejected() {
        // serde_json skips the strings of fields it ignores without decoding their escapes.
        let review = |ignored: &str| {
            format!(
                r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","ignored":"{ignored}","request":{{"uid":"u1","kind":{{"group":"apps","version":"v1","kind":"Deployment"}},"namespace":"shop","name":"web","operation":"DELETE","userInfo":{{"username":"alice"}}}}}}"#
            )
        };
        let e = parse_review(review(r"\udc10x").as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "not an AdmissionReview: lone leading surrogate in hex escape at line 1 column 78"
        );
        let e = parse_review(review(r"\ud83dx").as_bytes()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "not an AdmissionReview: unexpected end of hex escape at line 1 column 79"
        );
        // A whole pair (an emoji) is a string like any other.
        let request = parse_review(review(r"\ud83d\ude00 \\ud").as_bytes()).unwrap();
        assert_eq!(request.uid, "u1");
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
