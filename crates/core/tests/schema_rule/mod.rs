//! The rule a JSON Schema property states, reduced to what the field table fixes, so a
//! contract file can be compared with the table field by field.

use std::collections::BTreeSet;

use heeldiary_core::{Field, Kind, MAX_SCORE};
use serde_json::{json, Value};

/// What a property allows: its types (`null` included when it may be cleared), its bounds and,
/// for a word or a list of words, the vocabulary.
#[derive(Debug, Default, PartialEq)]
pub struct Rule {
    types: BTreeSet<String>,
    format: Option<String>,
    minimum: Option<u64>,
    maximum: Option<u64>,
    max_length: Option<u64>,
    words: Option<Vec<String>>,
    constant: Option<Value>,
}

impl Rule {
    fn of_types(types: &[&str]) -> Rule {
        Rule {
            types: types.iter().map(|t| t.to_string()).collect(),
            ..Rule::default()
        }
    }

    fn absorb(&mut self, other: Rule) {
        self.types.extend(other.types);
        self.format = self.format.take().or(other.format);
        self.minimum = self.minimum.or(other.minimum);
        self.maximum = self.maximum.or(other.maximum);
        self.max_length = self.max_length.or(other.max_length);
        self.words = self.words.take().or(other.words);
        self.constant = self.constant.take().or(other.constant);
    }
}

/// The rule the table gives `field`; `clearable` adds `null` where the kind may be cleared (an
/// operation's patch).
pub fn expected(field: Field, clearable: bool) -> Rule {
    let words = |words: &[&str]| Some(words.iter().map(|w| w.to_string()).collect());
    let mut rule = match field.kind() {
        Kind::Day => Rule {
            format: Some("date".into()),
            ..Rule::of_types(&["string"])
        },
        Kind::Instant => Rule {
            format: Some("date-time".into()),
            ..Rule::of_types(&["string"])
        },
        Kind::Score => Rule {
            minimum: Some(0),
            maximum: Some(u64::from(MAX_SCORE)),
            ..Rule::of_types(&["integer"])
        },
        Kind::Count { max } => Rule {
            minimum: Some(0),
            maximum: Some(max),
            ..Rule::of_types(&["integer"])
        },
        Kind::Flag => Rule::of_types(&["boolean"]),
        Kind::Word(vocabulary) => Rule {
            words: words(vocabulary.words),
            ..Rule::of_types(&["string"])
        },
        Kind::Words(vocabulary) => Rule {
            words: words(vocabulary.words),
            ..Rule::of_types(&["array"])
        },
        Kind::Text { max_chars } => Rule {
            max_length: Some(max_chars as u64),
            ..Rule::of_types(&["string"])
        },
        Kind::Tombstone => Rule {
            constant: Some(json!(true)),
            ..Rule::of_types(&["boolean"])
        },
    };
    if clearable && field.kind().clearable() {
        rule.types.insert("null".into());
    }
    rule
}

/// The rule `schema` states, following `$ref`s into `document` and the members of a `oneOf`.
/// An `enum` of words or a `const` states its type.
pub fn stated(schema: &Value, document: &Value) -> Rule {
    let mut rule = Rule::default();
    if let Some(target) = schema["$ref"].as_str() {
        let pointer = target.strip_prefix('#').expect("a local reference");
        let resolved = document
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{target} is not in the document"));
        rule.absorb(stated(resolved, document));
    }
    for member in schema["oneOf"].as_array().into_iter().flatten() {
        rule.absorb(stated(member, document));
    }
    match &schema["type"] {
        Value::String(one) => {
            rule.types.insert(one.clone());
        }
        Value::Array(many) => rule
            .types
            .extend(many.iter().filter_map(|t| t.as_str().map(String::from))),
        _ => {}
    }
    if let Some(words) = schema["enum"].as_array() {
        rule.words = Some(
            words
                .iter()
                .map(|w| w.as_str().expect("words are text").to_string())
                .collect(),
        );
        rule.types.insert("string".into());
    }
    if let Some(items) = schema.get("items") {
        rule.words = stated(items, document).words;
    }
    if let Some(constant) = schema.get("const") {
        rule.types.insert(
            match constant {
                Value::Bool(_) => "boolean",
                other => panic!("unexpected const {other}"),
            }
            .into(),
        );
        rule.constant = Some(constant.clone());
    }
    rule.format = rule.format.or(schema["format"].as_str().map(String::from));
    rule.minimum = rule.minimum.or(schema["minimum"].as_u64());
    rule.maximum = rule.maximum.or(schema["maximum"].as_u64());
    rule.max_length = rule.max_length.or(schema["maxLength"].as_u64());
    rule
}

/// Checks that `properties` (an object of property schemas) has every field with its rule, and
/// besides the fields exactly the keys `extra`.
pub fn assert_fields_described(
    properties: &Value,
    document: &Value,
    extra: &[&str],
    clearable: bool,
    what: &str,
) {
    let described: BTreeSet<&str> = properties
        .as_object()
        .unwrap_or_else(|| panic!("{what} has no properties"))
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected_keys: BTreeSet<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
    expected_keys.extend(extra);
    assert_eq!(described, expected_keys, "{what}: properties");
    for field in Field::ALL {
        assert_eq!(
            stated(&properties[field.as_str()], document),
            expected(*field, clearable),
            "{what}: {field}"
        );
    }
}
