//! A pod template in canonical form, parsed from the JSON text a review carried: object
//! keys sorted (a repeated key keeps its last value, as a JSON map does), the
//! `pod-template-hash` label left out. Two templates are the same exactly when their
//! canonical forms are equal, and the revision hash (Appendix A) is the SHA-256 of the
//! canonical form serialized. Strings without escapes borrow the review's text and objects
//! are vectors, so a template costs a fraction of building it as a `serde_json::Value`;
//! [`super::workload_revision`] hashes `Value`s to the same digest.

use crate::api::keys;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

#[derive(Clone, Debug, PartialEq)]
enum Node<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

/// A pod template in canonical form.
#[derive(Clone, Debug, PartialEq)]
pub struct Template<'a>(Node<'a>);

impl<'a> Template<'a> {
    /// The template of an object that has none: `null`, as a `Value` lookup finds it.
    pub const NULL: Template<'static> = Template(Node::Null);

    /// The canonical form of `json`, the text of a template that has already been parsed
    /// once as part of its review. `None` for text that is not JSON.
    pub fn parse(json: &'a str) -> Option<Template<'a>> {
        let mut de = serde_json::Deserializer::from_str(json);
        let mut node = NodeSeed.deserialize(&mut de).ok()?;
        de.end().ok()?;
        canonicalize(&mut node, Depth::Template);
        Some(Template(node))
    }

    /// Whether `json`, another template's text, has this canonical form. Decided while
    /// reading the text, without building it, and stops at the first difference. The text
    /// must not repeat a key within an object (the apiserver's serialization of a stored
    /// object never does); the last value of a repeated key would otherwise not win.
    pub fn matches(&self, json: &str) -> bool {
        let mut de = serde_json::Deserializer::from_str(json);
        let seed = Match {
            node: &self.0,
            depth: Depth::Template,
        };
        seed.deserialize(&mut de).is_ok() && de.end().is_ok()
    }

    /// First 10 hex digits of the SHA-256 of the canonical JSON.
    pub fn revision(&self) -> String {
        let mut hasher = super::classify::HashWriter(Sha256::new());
        // Writing JSON values into a hasher cannot fail.
        let _ = serde_json::to_writer(&mut hasher, &self.0);
        super::classify::short_hex(&hasher.0.finalize())
    }
}

/// Where in the template a value sits: only `metadata.labels` of the template itself
/// holds the `pod-template-hash` label to leave out.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Depth {
    Template,
    Metadata,
    Labels,
    Other,
}

impl Depth {
    /// Where the value under `key` of an object at this depth sits.
    pub(super) fn child(self, key: &str) -> Depth {
        match (self, key) {
            (Depth::Template, "metadata") => Depth::Metadata,
            (Depth::Metadata, "labels") => Depth::Labels,
            _ => Depth::Other,
        }
    }
}

fn canonicalize(node: &mut Node, depth: Depth) {
    match node {
        Node::Object(entries) => {
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            // Equal keys are now adjacent in arrival order: keep the last value.
            entries.dedup_by(|later, earlier| {
                let same = later.0 == earlier.0;
                if same {
                    std::mem::swap(&mut later.1, &mut earlier.1);
                }
                same
            });
            if depth == Depth::Labels {
                entries.retain(|(k, _)| k != keys::POD_TEMPLATE_HASH);
            }
            for (key, value) in entries {
                canonicalize(value, depth.child(key));
            }
        }
        Node::Array(items) => items
            .iter_mut()
            .for_each(|item| canonicalize(item, Depth::Other)),
        _ => {}
    }
}

impl serde::Serialize for Node<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Node::Null => serializer.serialize_unit(),
            Node::Bool(b) => serializer.serialize_bool(*b),
            Node::Number(n) => n.serialize(serializer),
            Node::String(s) => serializer.serialize_str(s),
            Node::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(item)?;
                }
                out.end()
            }
            Node::Object(entries) => {
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    out.serialize_entry(k.as_ref(), v)?;
                }
                out.end()
            }
        }
    }
}

struct NodeSeed;

impl<'de> DeserializeSeed<'de> for NodeSeed {
    type Value = Node<'de>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Node<'de>, D::Error> {
        de.deserialize_any(NodeSeed)
    }
}

impl<'de> Visitor<'de> for NodeSeed {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node<'de>, E> {
        // As `serde_json::Value` does: JSON text has no NaN or infinity to lose.
        Ok(Number::from_f64(v).map_or(Node::Null, Node::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(v.to_owned())))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(NodeSeed)? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            entries.push((key, map.next_value_seed(NodeSeed)?));
        }
        Ok(Node::Object(entries))
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Cow<'de, str>, D::Error> {
        de.deserialize_str(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// Reads JSON text and fails at the first place it differs from `node`.
#[derive(Clone, Copy)]
struct Match<'n, 'a> {
    node: &'n Node<'a>,
    depth: Depth,
}

impl Match<'_, '_> {
    fn expect<E: serde::de::Error>(self, same: bool) -> Result<(), E> {
        if same {
            Ok(())
        } else {
            Err(E::custom("templates differ"))
        }
    }
}

impl<'de> DeserializeSeed<'de> for Match<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Match<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.expect(*self.node == Node::Null)
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<(), E> {
        self.expect(*self.node == Node::Bool(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<(), E> {
        self.expect(*self.node == Node::Number(v.into()))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<(), E> {
        self.expect(*self.node == Node::Number(v.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<(), E> {
        self.expect(*self.node == Number::from_f64(v).map_or(Node::Null, Node::Number))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<(), E> {
        self.expect(matches!(self.node, Node::String(s) if s == v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Node::Array(items) = self.node else {
            return self.expect(false);
        };
        let mut seen = 0;
        while let Some(node) = items.get(seen) {
            let element = Match {
                node,
                depth: Depth::Other,
            };
            if seq.next_element_seed(element)?.is_none() {
                break;
            }
            seen += 1;
        }
        // Nothing may follow the last item of `items`.
        let more = seq.next_element::<serde::de::IgnoredAny>()?.is_some();
        self.expect(seen == items.len() && !more)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Node::Object(entries) = self.node else {
            return self.expect(false);
        };
        let mut seen = 0;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if self.depth == Depth::Labels && key == keys::POD_TEMPLATE_HASH {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            }
            let Ok(at) = entries.binary_search_by(|(k, _)| k.as_ref().cmp(&key)) else {
                return self.expect(false);
            };
            map.next_value_seed(Match {
                node: &entries[at].1,
                depth: self.depth.child(&key),
            })?;
            seen += 1;
        }
        self.expect(seen == entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::revision_hash;
    use serde_json::{Value, json};

    /// Templates that stress what canonical form means: key order, escapes, unicode,
    /// numbers of every kind, nesting, a repeated key and the label to leave out.
    fn templates() -> Vec<String> {
        let mut texts: Vec<String> = [
            json!({"metadata": {"labels": {"app": "checkout"}},
                   "spec": {"containers": [{"name": "app", "image": "shop/checkout:v2"}]}}),
            json!({"spec": {"b": 1, "a": "é", "c": [1, -2, 2.5, 1e300, 0.0, true, null, {"z": {}, "y": []}]},
                   "metadata": {"labels": {"x": "1", "pod-template-hash": "abc"},
                                "annotations": {"pod-template-hash": "kept: not a label"}}}),
            json!({"metadata": {"labels": {"quote": "say \"hi\"\n", "tab": "a\tb", "ctl": "\u{1}"}}}),
            json!({"spec": {"containers": [{"env": [{"name": "K", "value": "\\path\\"}]}]}}),
            json!(null),
            json!({}),
        ]
        .iter()
        .map(Value::to_string)
        .collect();
        // Text as other encoders write it: keys unsorted, escaped unicode, whitespace,
        // exponents, a negative zero, and a repeated key whose last value wins.
        texts.extend([
            r#"{"spec":{"z":1,"a":2},"metadata":{"labels":{"b":"\u00e9","a":"\u0041"}}}"#.into(),
            "{ \"spec\" : { \"n\" : [ 1E2 , -0 , 18446744073709551615, -9223372036854775808 ] } }"
                .into(),
            r#"{"spec":{"dup":1,"other":true,"dup":2},"metadata":{"labels":{"pod-template-hash":"x","pod-template-hash":"y"}}}"#.into(),
        ]);
        texts
    }

    #[test]
    fn revision_equals_the_hash_of_the_same_template_as_a_value() {
        for text in templates() {
            let value: Value = serde_json::from_str(&text).unwrap();
            let template = Template::parse(&text).unwrap();
            let mut without_label = value.clone();
            if let Some(labels) = without_label
                .pointer_mut("/metadata/labels")
                .and_then(Value::as_object_mut)
            {
                labels.remove(keys::POD_TEMPLATE_HASH);
            }
            assert_eq!(template.revision(), revision_hash(&without_label), "{text}");
        }
    }

    #[test]
    fn equality_is_equality_of_the_values_without_the_label() {
        let texts = templates();
        let strip = |text: &str| {
            let mut value: Value = serde_json::from_str(text).unwrap();
            if let Some(labels) = value
                .pointer_mut("/metadata/labels")
                .and_then(Value::as_object_mut)
            {
                labels.remove(keys::POD_TEMPLATE_HASH);
            }
            value
        };
        for a in &texts {
            for b in &texts {
                assert_eq!(
                    Template::parse(a) == Template::parse(b),
                    strip(a) == strip(b),
                    "{a} vs {b}"
                );
            }
        }
        let reordered = r#"{"spec":{"containers":[{"image":"v1","name":"app"}]},"metadata":{"labels":{"pod-template-hash":"5d4f","app":"x"}}}"#;
        let plain = r#"{"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"app","image":"v1"}]}}"#;
        assert_eq!(Template::parse(reordered), Template::parse(plain));
        assert_ne!(
            Template::parse(plain),
            Template::parse(&plain.replace("v1", "v2"))
        );
    }

    #[test]
    fn matching_text_is_comparing_canonical_forms() {
        let texts = templates();
        for a in &texts {
            // Repeated keys are outside what `matches` reads.
            for b in texts.iter().filter(|b| !b.contains("\"dup\"")) {
                let template = Template::parse(a).unwrap();
                assert_eq!(
                    template.matches(b),
                    Some(&template) == Template::parse(b).as_ref(),
                    "{a} vs {b}"
                );
            }
        }
        let plain = r#"{"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"app","image":"v1"}]}}"#;
        let template = Template::parse(plain).unwrap();
        assert!(template.matches(r#"{"spec":{"containers":[{"image":"v1","name":"app"}]},"metadata":{"labels":{"pod-template-hash":"5d4f","app":"x"}}}"#));
        for other in [
            r#"{"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"app","image":"v2"}]}}"#,
            r#"{"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"app","image":"v1"},{}]}}"#,
            r#"{"metadata":{"labels":{"app":"x"}},"spec":{"containers":[]}}"#,
            r#"{"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"app"}]}}"#,
            r#"{"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"app","image":"v1","args":[]}]}}"#,
            r#"{"metadata":{"labels":{"app":"x","pod-template-hash":"1"},"annotations":{}},"spec":{"containers":[{"name":"app","image":"v1"}]}}"#,
            r#"{"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"app","image":"v1"}]}} {"#,
            "[]",
            "null",
        ] {
            assert!(!template.matches(other), "{other}");
        }
    }

    #[test]
    fn text_that_is_not_json_has_no_template() {
        assert_eq!(Template::parse("{\"a\":"), None);
        assert_eq!(Template::parse("{} {}"), None);
    }
}
