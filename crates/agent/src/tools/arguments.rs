//! A client-side function's arguments, as the LLM wrote them, checked against the
//! function's `parameters` (JSON Schema) before anything is run: a webhook only ever sees
//! arguments that fit, and the model is told which one did not.
//!
//! The subset of JSON Schema (2020-12, validation vocabulary) that function definitions
//! use: `type` (one name or a list; `integer` is a number without a fractional part),
//! `properties`, `required`, `additionalProperties` (`false` or a schema), `items`, `enum`
//! and `const`. Other keywords are not checked (they are the LLM's hints, not a contract
//! voice-ua can enforce). Values nest at most [`MAX_DEPTH`] levels.

use serde_json::{Map, Value};

/// The deepest nesting of objects and arrays accepted in arguments.
pub const MAX_DEPTH: usize = 16;
/// Longest argument path quoted in an error.
const MAX_PATH: usize = 80;

/// Arguments that do not fit the function's parameters. `Display` is one sentence for the
/// LLM ("argument 'unit' is required").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgumentError {
    /// Not JSON at all.
    #[error("the arguments are not valid JSON ({detail})")]
    NotJson {
        /// serde_json's complaint.
        detail: String,
    },
    /// A property listed in `required` is absent.
    #[error("argument '{path}' is required")]
    Missing {
        /// Where: `unit`, `address.city`, `items[2].sku`.
        path: String,
    },
    /// A value of the wrong JSON type.
    #[error("{} must be {expected}, not {found}", Subject(path))]
    WrongType {
        /// Where; empty for the arguments as a whole.
        path: String,
        /// `a string`, `an integer or null`, ...
        expected: String,
        /// `a number`, `an object`, ...
        found: &'static str,
    },
    /// A value not in the `enum` (or not the `const`).
    #[error("{} must be one of {allowed}", Subject(path))]
    NotAllowed {
        /// Where.
        path: String,
        /// The allowed values, as JSON.
        allowed: String,
    },
    /// A property the schema does not have, with `additionalProperties: false`.
    #[error("argument '{path}' is not a parameter of this function")]
    Unexpected {
        /// Where.
        path: String,
    },
    /// Objects or arrays nested deeper than [`MAX_DEPTH`].
    #[error("{} is nested more than {MAX_DEPTH} levels deep", Subject(path))]
    TooDeep {
        /// Where.
        path: String,
    },
}

/// `argument 'x'`, or `the arguments` for the whole object.
struct Subject<'a>(&'a str);

impl std::fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("the arguments")
        } else {
            write!(f, "argument '{}'", self.0)
        }
    }
}

/// Parse `arguments` (a JSON text; empty or blank means `{}`) and check it against
/// `schema`. Never panics, whatever either holds.
pub fn check(schema: &Value, arguments: &str) -> Result<Value, ArgumentError> {
    let value = if arguments.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        serde_json::from_str(arguments).map_err(|e| ArgumentError::NotJson { detail: e.to_string() })?
    };
    validate(schema, &value)?;
    Ok(value)
}

/// Check `value` against `schema` (see the module documentation for what is checked).
pub fn validate(schema: &Value, value: &Value) -> Result<(), ArgumentError> {
    let mut path = String::new();
    check_depth(value, &mut path, 0)?;
    check_value(schema, value, &mut path)
}

/// No object or array nests deeper than [`MAX_DEPTH`], whatever the schema says.
fn check_depth(value: &Value, path: &mut String, depth: usize) -> Result<(), ArgumentError> {
    if depth > MAX_DEPTH {
        return Err(ArgumentError::TooDeep { path: path.clone() });
    }
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                let len = path.len();
                push_key(path, name);
                check_depth(field, path, depth + 1)?;
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                push_index(path, i);
                check_depth(item, path, depth + 1)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// `value` against `schema`; recursion follows the value, whose depth is checked first.
fn check_value(schema: &Value, value: &Value, path: &mut String) -> Result<(), ArgumentError> {
    let schema = match schema {
        Value::Object(s) => s,
        Value::Bool(false) => return Err(ArgumentError::Unexpected { path: path.clone() }),
        // `true`, or a schema voice-ua cannot read: anything goes.
        _ => return Ok(()),
    };
    if let Some(types) = schema.get("type") {
        check_type(types, value, path)?;
    }
    if let Some(Value::Array(allowed)) = schema.get("enum") {
        if !allowed.contains(value) {
            return Err(ArgumentError::NotAllowed { path: path.clone(), allowed: list(allowed) });
        }
    }
    if let Some(constant) = schema.get("const") {
        if constant != value {
            let allowed = list(std::slice::from_ref(constant));
            return Err(ArgumentError::NotAllowed { path: path.clone(), allowed });
        }
    }
    match value {
        Value::Object(fields) => check_object(schema, fields, path),
        Value::Array(items) => {
            let Some(item_schema) = schema.get("items") else { return Ok(()) };
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                push_index(path, i);
                check_value(item_schema, item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn check_object(
    schema: &Map<String, Value>,
    fields: &Map<String, Value>,
    path: &mut String,
) -> Result<(), ArgumentError> {
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !fields.contains_key(name) {
                let len = path.len();
                push_key(path, name);
                let missing = path.clone();
                path.truncate(len);
                return Err(ArgumentError::Missing { path: missing });
            }
        }
    }
    let additional = schema.get("additionalProperties");
    for (name, field) in fields {
        let len = path.len();
        push_key(path, name);
        match properties.and_then(|p| p.get(name)) {
            Some(property) => check_value(property, field, path)?,
            None => match additional {
                Some(Value::Bool(false)) => return Err(ArgumentError::Unexpected { path: path.clone() }),
                Some(extra @ Value::Object(_)) => check_value(extra, field, path)?,
                _ => {}
            },
        }
        path.truncate(len);
    }
    Ok(())
}

fn check_type(types: &Value, value: &Value, path: &str) -> Result<(), ArgumentError> {
    let names: Vec<&str> = match types {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return Ok(()),
    };
    // Type names voice-ua does not know are not enforced.
    if names.is_empty() || names.iter().any(|t| !KNOWN_TYPES.contains(t)) {
        return Ok(());
    }
    if names.iter().any(|t| is_type(t, value)) {
        return Ok(());
    }
    let expected = names.iter().map(|t| article(t)).collect::<Vec<_>>().join(" or ");
    Err(ArgumentError::WrongType { path: path.to_owned(), expected, found: article(kind(value)) })
}

const KNOWN_TYPES: &[&str] = &["object", "array", "string", "integer", "number", "boolean", "null"];

fn is_type(name: &str, value: &Value) -> bool {
    match (name, value) {
        ("object", Value::Object(_))
        | ("array", Value::Array(_))
        | ("string", Value::String(_))
        | ("number", Value::Number(_))
        | ("boolean", Value::Bool(_))
        | ("null", Value::Null) => true,
        ("integer", Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.is_finite() && f.fract() == 0.0)
        }
        _ => false,
    }
}

/// The JSON type of `value`, by the name [`is_type`] would accept for it (`integer` for
/// whole numbers, so that "must be a string, not an integer" reads right).
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) if is_type("integer", value) => "integer",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
    }
}

fn article(name: &str) -> &'static str {
    match name {
        "object" => "an object",
        "array" => "an array",
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "a boolean",
        _ => "null",
    }
}

/// At most eight allowed values, as JSON, at most [`MAX_PATH`] bytes each.
fn list(values: &[Value]) -> String {
    let mut shown: Vec<String> =
        values.iter().take(8).map(|v| super::http::clip(&v.to_string(), MAX_PATH).to_owned()).collect();
    if values.len() > 8 {
        shown.push("...".into());
    }
    shown.join(", ")
}

/// `a.b` for a key (the LLM's own key names: control characters dropped, bounded).
fn push_key(path: &mut String, key: &str) {
    if path.len() >= MAX_PATH {
        return;
    }
    if !path.is_empty() {
        path.push('.');
    }
    let key: String = key.chars().filter(|c| !c.is_control()).collect();
    path.push_str(super::http::clip(&key, MAX_PATH));
}

fn push_index(path: &mut String, index: usize) {
    if path.len() < MAX_PATH {
        path.push_str(&format!("[{index}]"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn weather() -> Value {
        json!({
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
                "days": {"type": "integer"},
                "lat": {"type": "number"},
                "alerts": {"type": ["boolean", "null"]},
                "where": {
                    "type": "object",
                    "properties": {"street": {"type": "string"}, "zip": {"type": "string"}},
                    "required": ["zip"],
                    "additionalProperties": false
                },
                "tags": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["city", "unit"]
        })
    }

    fn error(arguments: &str) -> String {
        match check(&weather(), arguments) {
            Ok(v) => panic!("accepted {v}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn arguments_that_fit_pass() {
        let ok = [
            r#"{"city":"Lyon","unit":"c"}"#,
            r#"{"city":"Lyon","unit":"f","days":3,"lat":45.7,"alerts":null,"extra":{"any":1}}"#,
            r#"{"city":"Lyon","unit":"c","days":2.0,"lat":45,"alerts":true}"#,
            r#"{"city":"Lyon","unit":"c","where":{"zip":"69001"},"tags":["a","b"]}"#,
        ];
        for args in ok {
            assert!(check(&weather(), args).is_ok(), "{args}");
        }
        let none = json!({"type": "object", "properties": {}});
        assert_eq!(check(&none, "").ok(), Some(json!({})));
        assert_eq!(check(&none, "  ").ok(), Some(json!({})));
    }

    #[test]
    fn each_misfit_names_the_field_and_the_problem() {
        assert_eq!(error(r#"{"city":"Lyon"}"#), "argument 'unit' is required");
        assert_eq!(error(""), "argument 'city' is required");
        assert_eq!(error(r#"{"city":7,"unit":"c"}"#), "argument 'city' must be a string, not an integer");
        assert_eq!(error(r#"{"city":"L","unit":"k"}"#), r#"argument 'unit' must be one of "c", "f""#);
        assert_eq!(
            error(r#"{"city":"L","unit":"c","days":2.5}"#),
            "argument 'days' must be an integer, not a number"
        );
        assert_eq!(
            error(r#"{"city":"L","unit":"c","days":"2"}"#),
            "argument 'days' must be an integer, not a string"
        );
        assert_eq!(
            error(r#"{"city":"L","unit":"c","lat":"45"}"#),
            "argument 'lat' must be a number, not a string"
        );
        assert_eq!(
            error(r#"{"city":"L","unit":"c","alerts":"yes"}"#),
            "argument 'alerts' must be a boolean or null, not a string"
        );
        assert_eq!(error(r#"{"city":"L","unit":"c","where":{}}"#), "argument 'where.zip' is required");
        assert_eq!(
            error(r#"{"city":"L","unit":"c","where":{"zip":"1","floor":2}}"#),
            "argument 'where.floor' is not a parameter of this function"
        );
        assert_eq!(
            error(r#"{"city":"L","unit":"c","tags":["a",3]}"#),
            "argument 'tags[1]' must be a string, not an integer"
        );
        assert_eq!(error(r#"["Lyon"]"#), "the arguments must be an object, not an array");
        assert!(error(r#"{"city":"Lyon""#).starts_with("the arguments are not valid JSON"));
        assert!(error("city=Lyon").starts_with("the arguments are not valid JSON"));
    }

    #[test]
    fn const_and_permissive_schemas() {
        let schema = json!({"type": "object", "properties": {"v": {"const": 2}}});
        assert!(check(&schema, r#"{"v":2}"#).is_ok());
        assert_eq!(
            check(&schema, r#"{"v":3}"#).err().map(|e| e.to_string()).as_deref(),
            Some("argument 'v' must be one of 2")
        );
        // Unknown type names and keywords are not enforced; `true` accepts anything.
        assert!(check(&json!({"type": "uuid", "format": "email"}), r#""x""#).is_ok());
        assert!(check(&json!(true), "[1]").is_ok());
        assert!(check(&json!({"properties": {"a": false}}), r#"{"a":1}"#).is_err());
    }

    #[test]
    fn deep_nesting_is_refused_without_recursing_forever() {
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        let schema = json!({"type": "object"});
        let args = format!(r#"{{"a":{deep}}}"#);
        match check(&schema, &args) {
            Err(ArgumentError::TooDeep { path }) => assert!(path.starts_with("a[0][0]"), "{path}"),
            other => panic!("{other:?}"),
        }
        // Whatever the schema: `true`, or arrays whose items are not described.
        for schema in [json!(true), json!({"type": "array", "items": {"$ref": "#"}})] {
            assert!(matches!(check(&schema, &deep), Err(ArgumentError::TooDeep { .. })), "{schema}");
        }
        let fits = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(check(&json!(true), &fits).is_ok());
        let recursive =
            json!({"type": "array", "items": {"type": "array", "items": {"type": "array", "items": {}}}});
        assert!(check(&recursive, "[[[[[[1]]]]]]").is_ok());
    }

    /// Arbitrary JSON values, nested a little.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{0,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A property schema and a value that fits it.
    fn fitting() -> impl Strategy<Value = (Value, Value)> {
        prop_oneof![
            "\\PC{0,8}".prop_map(|s| (json!({"type": "string"}), Value::String(s))),
            any::<i32>().prop_map(|n| (json!({"type": "integer"}), json!(n))),
            any::<i32>().prop_map(|n| (json!({"type": "number"}), json!(f64::from(n) + 0.5))),
            any::<bool>().prop_map(|b| (json!({"type": ["boolean", "null"]}), json!(b))),
            prop::sample::select(vec!["a", "b", "c"])
                .prop_map(|s| (json!({"enum": ["a", "b", "c"]}), json!(s))),
            prop::collection::vec(any::<i16>(), 0..4)
                .prop_map(|v| (json!({"type": "array", "items": {"type": "integer"}}), json!(v))),
        ]
    }

    proptest! {
        #[test]
        fn any_text_or_value_never_panics(text in "\\PC{0,64}", schema in json_value(), value in json_value()) {
            let _ = check(&schema, &text);
            let _ = validate(&schema, &value);
            let _ = validate(&weather(), &value);
            let _ = check(&weather(), &value.to_string());
        }

        #[test]
        fn fitting_arguments_pass_and_each_break_is_named(
            fields in prop::collection::btree_map("[a-z]{1,6}", fitting(), 1..6),
            pick in any::<prop::sample::Index>(),
        ) {
            let properties: Map<String, Value> = fields.iter().map(|(k, (s, _))| (k.clone(), s.clone())).collect();
            let names: Vec<&String> = fields.keys().collect();
            let schema = json!({"type": "object", "properties": properties, "required": names, "additionalProperties": false});
            let args: Map<String, Value> = fields.iter().map(|(k, (_, v))| (k.clone(), v.clone())).collect();
            let text = Value::Object(args.clone()).to_string();
            prop_assert_eq!(check(&schema, &text).ok(), Some(Value::Object(args.clone())));

            let victim = pick.get(&names).as_str();
            let mut missing = args.clone();
            missing.remove(victim);
            prop_assert_eq!(validate(&schema, &Value::Object(missing)), Err(ArgumentError::Missing { path: victim.to_owned() }));

            let mut wrong = args.clone();
            wrong.insert(victim.to_owned(), json!({"not": "this"}));
            let err = validate(&schema, &Value::Object(wrong)).expect_err("an object fits no property");
            prop_assert!(err.to_string().starts_with(&format!("argument '{victim}' must be")), "{}", err);

            let mut extra = args;
            extra.insert("zz_extra".into(), json!(1));
            prop_assert_eq!(validate(&schema, &Value::Object(extra)), Err(ArgumentError::Unexpected { path: "zz_extra".into() }));
        }
    }
}
