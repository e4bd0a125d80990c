//! `cargo xtask vmconfig --schema`: the JSON Schema of the VM config format (from the
//! vmconfig crate, [`vmconfig::json_schema`]), for editors.
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The schema, pretty-printed.
pub fn schema_text() -> Result<String> {
    let mut text = serde_json::to_string_pretty(&vmconfig::json_schema::vm_schema())
        .context("cannot print the schema")?;
    text.push('\n');
    Ok(text)
}

/// Prints the schema, or writes it to `out`.
pub fn vmconfig(schema: bool, out: Option<&Path>) -> Result<()> {
    if !schema {
        bail!("nothing to do: give --schema (the JSON Schema of VM configs)");
    }
    let text = schema_text()?;
    match out {
        Some(p) => {
            std::fs::write(p, &text).with_context(|| format!("cannot write {}", p.display()))?;
            eprintln!("xtask: wrote the VM config JSON Schema to {}", p.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The schema against the configs: every config in configs/vms passes, wrong ones
    //! fail, checked with a small validator of the keywords the schema uses (a full
    //! JSON Schema crate would bring a regex engine and an HTTP client for `$ref`s
    //! this schema does not have). An unknown keyword fails the test, so the
    //! validator cannot silently skip a rule.
    use serde_json::{json, Map, Value};

    /// Checks `v` against `s`; returns the problems, each with its JSON path.
    fn validate(root: &Value, s: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
        let s = match s {
            Value::Bool(true) => return,
            Value::Bool(false) => return out.push(format!("{at}: not allowed")),
            Value::Object(o) => o,
            other => panic!("bad schema {other}"),
        };
        for (k, rule) in s {
            match k.as_str() {
                "$schema" | "title" | "description" | "format" | "default" | "$defs" => {}
                "$ref" => {
                    let name = rule.as_str().unwrap().trim_start_matches("#/$defs/");
                    validate(root, &root["$defs"][name], v, at, out);
                }
                "type" => {
                    let types: Vec<&str> = match rule {
                        Value::String(t) => vec![t.as_str()],
                        Value::Array(a) => a.iter().map(|t| t.as_str().unwrap()).collect(),
                        _ => panic!("bad type {rule}"),
                    };
                    let ok = types.iter().any(|t| match *t {
                        "integer" => v.is_i64() || v.is_u64(),
                        "number" => v.is_number(),
                        "string" => v.is_string(),
                        "boolean" => v.is_boolean(),
                        "array" => v.is_array(),
                        "object" => v.is_object(),
                        "null" => v.is_null(),
                        other => panic!("unknown type {other}"),
                    });
                    if !ok {
                        out.push(format!("{at}: {v} is not of type {rule}"));
                    }
                }
                "enum" => {
                    if !rule.as_array().unwrap().contains(v) {
                        out.push(format!("{at}: {v} is not one of {rule}"));
                    }
                }
                "minimum" | "maximum" => {
                    if let Some(n) = v.as_f64() {
                        let bound = rule.as_f64().unwrap();
                        if (k == "minimum" && n < bound) || (k == "maximum" && n > bound) {
                            out.push(format!("{at}: {v} is out of range ({k} {rule})"));
                        }
                    }
                }
                "minLength" => {
                    if let Some(t) = v.as_str() {
                        if (t.chars().count() as u64) < rule.as_u64().unwrap() {
                            out.push(format!("{at}: too short"));
                        }
                    }
                }
                "pattern" => {
                    // The only pattern is the VM name's.
                    assert_eq!(rule.as_str(), Some(vmconfig::json_schema::NAME_PATTERN));
                    if let Some(t) = v.as_str() {
                        if !vmconfig::valid_name(t) {
                            out.push(format!("{at}: {t:?} does not match {rule}"));
                        }
                    }
                }
                "minItems" | "maxItems" => {
                    if let Some(a) = v.as_array() {
                        let n = rule.as_u64().unwrap() as usize;
                        if (k == "minItems" && a.len() < n) || (k == "maxItems" && a.len() > n) {
                            out.push(format!("{at}: {} items ({k} {n})", a.len()));
                        }
                    }
                }
                "prefixItems" => {
                    if let Some(a) = v.as_array() {
                        for (i, (item, sub)) in a.iter().zip(rule.as_array().unwrap()).enumerate() {
                            validate(root, sub, item, &format!("{at}[{i}]"), out);
                        }
                    }
                }
                "items" => {
                    if let Some(a) = v.as_array() {
                        let skip = s
                            .get("prefixItems")
                            .and_then(Value::as_array)
                            .map_or(0, Vec::len);
                        for (i, item) in a.iter().enumerate().skip(skip) {
                            validate(root, rule, item, &format!("{at}[{i}]"), out);
                        }
                    }
                }
                "properties" | "required" | "additionalProperties" => {
                    // The three go together: checked once, at the first of them.
                    let first = s.keys().find(|k| {
                        matches!(
                            k.as_str(),
                            "properties" | "required" | "additionalProperties"
                        )
                    });
                    if let (Some(o), true) = (v.as_object(), first == Some(k)) {
                        object(root, s, o, at, out);
                    }
                }
                "anyOf" | "oneOf" => {
                    let results: Vec<Vec<String>> = rule
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|sub| {
                            let mut p = Vec::new();
                            validate(root, sub, v, at, &mut p);
                            p
                        })
                        .collect();
                    let fits = results.iter().filter(|p| p.is_empty()).count();
                    if k == "oneOf" && fits > 1 {
                        out.push(format!("{at}: {v} fits {fits} of the oneOf schemas"));
                    }
                    if fits == 0 {
                        // The problems of the alternative that fits best: the fewest
                        // wrong types at this very value (`Option<T>` is T or null),
                        // then the fewest problems.
                        let here = format!("{at}: ");
                        let best = results.into_iter().min_by_key(|p| {
                            (p.iter().filter(|l| l.starts_with(&here)).count(), p.len())
                        });
                        out.extend(best.unwrap_or_default());
                    }
                }
                other => panic!("the validator does not know keyword {other}"),
            }
        }
    }

    /// `properties`, `required` and `additionalProperties`.
    fn object(
        root: &Value,
        s: &Map<String, Value>,
        o: &Map<String, Value>,
        at: &str,
        out: &mut Vec<String>,
    ) {
        let props = s.get("properties").and_then(Value::as_object);
        let key = |k: &str| format!("{at}.{k}");
        if let Some(req) = s.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !o.contains_key(r) {
                    out.push(format!("{}: missing", key(r)));
                }
            }
        }
        for (k, val) in o {
            match props.and_then(|p| p.get(k)) {
                Some(sub) => validate(root, sub, val, &key(k), out),
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => out.push(format!("{}: unknown key", key(k))),
                    Some(sub) => validate(root, sub, val, &key(k), out),
                    None => {}
                },
            }
        }
    }

    /// Problems of `value` against the schema, each reported once.
    fn problems(value: &Value) -> Vec<String> {
        let schema = vmconfig::json_schema::vm_schema();
        let mut out = Vec::new();
        validate(&schema, &schema, value, "$", &mut out);
        out.sort();
        out.dedup();
        out
    }

    fn toml_json(text: &str) -> Value {
        toml_edit::de::from_str::<Value>(text).unwrap()
    }

    fn repo() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    #[test]
    fn the_schema_is_draft_2020_12_and_closed() {
        let s = vmconfig::json_schema::vm_schema();
        assert_eq!(
            s["$schema"],
            json!("https://json-schema.org/draft/2020-12/schema")
        );
        assert_eq!(s["additionalProperties"], json!(false));
        assert_eq!(s["required"], json!(["base", "kernel"]));
        let text = super::schema_text().unwrap();
        assert!(text.contains("\"memory_regions\""), "{text}");
    }

    #[test]
    fn every_config_in_configs_vms_passes() {
        let mut files: Vec<_> = std::fs::read_dir(repo().join("configs/vms"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.push(repo().join("xtask/tests/data/fs-vm.toml"));
        files.sort();
        assert!(files.len() > 10);
        for f in &files {
            let value = toml_json(&std::fs::read_to_string(f).unwrap());
            let p = problems(&value);
            assert!(p.is_empty(), "{}: {p:?}", f.display());
        }
    }

    const GOOD: &str = r#"
[base]
id = 1
name = "vm1"
cpu_num = 1

[kernel]
entry_point = 0x4008_0000
kernel_path = "guest:testguest"
kernel_load_addr = 0x4008_0000
memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0]]

[devices]
emu_devices = [["uart", 0x0900_0000, 0x1000, 33, 0x2, []]]
passthrough_devices = [["rtc", 0x901_0000, 0x901_0000, 0x1000, 34]]
interrupt_mode = "passthrough"
"#;

    /// Each edit of GOOD and the JSON path the schema must name. The vmconfig parser
    /// rejects each of them too.
    const BAD: &[(&str, &str, &str)] = &[
        ("id = 1", "id = \"one\"", "$.base.id"),
        ("name = \"vm1\"", "name = \"vm 1\"", "$.base.name"),
        ("cpu_num = 1", "cpu_num = 1\nbogus = 2", "$.base.bogus"),
        ("0x7, 0]]", "0x7]]", "$.kernel.memory_regions[0]"),
        ("0x7, 0]]", "0x7, 3]]", "$.kernel.memory_regions[0][3]"),
        ("0x2, []]]", "0x99, []]]", "$.devices.emu_devices[0][4]"),
        (
            "[\"uart\", 0x0900_0000",
            "[\"\", 0x0900_0000",
            "$.devices.emu_devices[0][0]",
        ),
        ("34]]", "-34]]", "$.devices.passthrough_devices[0][4]"),
        (
            "\"passthrough\"",
            "\"sometimes\"",
            "$.devices.interrupt_mode",
        ),
        (
            "kernel_path = \"guest:testguest\"\n",
            "",
            "$.kernel.kernel_path",
        ),
    ];

    #[test]
    fn wrong_configs_fail_where_the_parser_fails() {
        assert_eq!(problems(&toml_json(GOOD)), Vec::<String>::new());
        assert!(vmconfig::parse_vm(GOOD, vmconfig::AARCH64).vm.is_some());
        for (from, to, path) in BAD {
            assert!(GOOD.contains(from), "{from}");
            let text = GOOD.replacen(from, to, 1);
            let p = problems(&toml_json(&text));
            assert!(
                p.iter().any(|l| l.starts_with(&format!("{path}:"))),
                "{to}: the schema should name {path}: {p:?}"
            );
            assert!(
                vmconfig::parse_vm(&text, vmconfig::AARCH64).vm.is_none(),
                "{to}: the parser accepts it"
            );
        }
    }
}
