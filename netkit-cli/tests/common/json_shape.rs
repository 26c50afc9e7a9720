//! The JSON shapes the README documents (section "JSON output"), parsed from
//! the README itself (compiled in, so the VM's tests have it too), and a
//! check of real output against them: a key added, removed or retyped
//! without the README changing fails the test.
#![allow(dead_code)]

use serde_json::Value;

const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
const START: &str = "<!-- json-shapes: start -->";
const END: &str = "<!-- json-shapes: end -->";
const HOOKS: [&str; 4] = ["ingress", "egress", "primary", "peer"];

#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Str,
    Int,
    Bool,
    Hook,
    /// (key, may be absent, shape)
    Obj(Vec<(String, bool, Shape)>),
    List(Box<Shape>),
    /// Another command's shape.
    Ref(String),
    Nullable(Box<Shape>),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    row: &'a str,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) {
        assert_eq!(self.peek(), Some(c), "README JSON shape `{}`: expected `{}` at {}", self.row, c as char, self.i);
        self.i += 1;
    }

    fn word(&mut self) -> String {
        self.ws();
        let start = self.i;
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
            self.i += 1;
        }
        assert!(self.i > start, "README JSON shape `{}`: expected a name at {}", self.row, start);
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn shape(&mut self) -> Shape {
        let base = match self.peek() {
            Some(b'{') => {
                self.eat(b'{');
                let mut fields = Vec::new();
                while self.peek() != Some(b'}') {
                    let key = self.word();
                    let optional = self.peek() == Some(b'?');
                    if optional {
                        self.eat(b'?');
                    }
                    self.eat(b':');
                    fields.push((key, optional, self.shape()));
                    if self.peek() == Some(b',') {
                        self.eat(b',');
                    }
                }
                self.eat(b'}');
                Shape::Obj(fields)
            }
            Some(b'[') => {
                self.eat(b'[');
                let inner = self.shape();
                self.eat(b']');
                Shape::List(Box::new(inner))
            }
            Some(b'<') => {
                self.eat(b'<');
                let start = self.i;
                while self.s.get(self.i).is_some_and(|c| *c != b'>') {
                    self.i += 1;
                }
                let name = String::from_utf8_lossy(&self.s[start..self.i]).trim().to_string();
                self.eat(b'>');
                Shape::Ref(name)
            }
            _ => match self.word().as_str() {
                "string" => Shape::Str,
                "int" => Shape::Int,
                "bool" => Shape::Bool,
                "hook" => Shape::Hook,
                other => panic!("README JSON shape `{}`: unknown type `{other}`", self.row),
            },
        };
        if self.peek() == Some(b'?') {
            self.eat(b'?');
            Shape::Nullable(Box::new(base))
        } else {
            base
        }
    }
}

/// Every documented command with its shape.
pub fn documented() -> Vec<(String, Shape)> {
    let start = README.find(START).expect("the README has its JSON shapes table");
    let end = README.find(END).expect("the JSON shapes table ends");
    let mut out = Vec::new();
    for row in README[start..end].lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").collect();
        let [commands, shape] = cells.as_slice() else { panic!("README JSON row `{row}` has not two cells") };
        let text = shape.trim().trim_matches('`');
        let mut p = Parser { s: text.as_bytes(), i: 0, row: text };
        let shape = p.shape();
        assert_eq!(p.peek(), None, "README JSON shape `{text}`: text after the shape");
        for command in commands.split(',').map(|c| c.trim().trim_matches('`')) {
            out.push((command.to_string(), shape.clone()));
        }
    }
    out
}

fn shape_of(command: &str) -> Shape {
    documented()
        .into_iter()
        .find(|(c, _)| c == command)
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("the README documents no JSON for `{command}`"))
}

fn compare(v: &Value, shape: &Shape, path: &str, errors: &mut Vec<String>) {
    let mut wrong = |what: &str| errors.push(format!("{path}: expected {what}, found {v}"));
    match shape {
        Shape::Nullable(inner) if !v.is_null() => compare(v, inner, path, errors),
        Shape::Str if !v.is_string() => wrong("a string"),
        Shape::Int if !(v.is_u64() || v.is_i64()) => wrong("an integer"),
        Shape::Bool if !v.is_boolean() => wrong("a bool"),
        Shape::Hook if !v.as_str().is_some_and(|h| HOOKS.contains(&h)) => wrong("a hook name"),
        Shape::Ref(command) => compare(v, &shape_of(command), path, errors),
        Shape::List(inner) => match v.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    compare(item, inner, &format!("{path}[{i}]"), errors);
                }
            }
            None => wrong("a list"),
        },
        Shape::Obj(fields) => match v.as_object() {
            Some(map) => {
                for (key, optional, s) in fields {
                    match map.get(key) {
                        Some(value) => compare(value, s, &format!("{path}.{key}"), errors),
                        None if *optional => {}
                        None => errors.push(format!("{path}: key `{key}` is missing")),
                    }
                }
                for key in map.keys().filter(|k| !fields.iter().any(|(f, _, _)| f == *k)) {
                    errors.push(format!("{path}: key `{key}` is not documented"));
                }
            }
            None => wrong("an object"),
        },
        _ => {}
    }
}

/// Where `v` differs from the shape the README documents for `command`.
pub fn differences(command: &str, v: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    compare(v, &shape_of(command), command, &mut errors);
    errors
}

/// Panics, listing every difference, unless `v` has the shape the README
/// documents for `command`.
pub fn check(command: &str, v: &Value) {
    let errors = differences(command, v);
    assert!(errors.is_empty(), "`netkit {command} -j` differs from the README's JSON table:\n{}", errors.join("\n"));
}
