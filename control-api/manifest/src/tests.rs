//! Manifest decoding: good input round-trips, bad input names every problem.

use std::path::Path;

use crate::{BindingTarget, Grants, ManifestError, Workload};

fn parse(yaml: &str) -> Result<Workload, ManifestError> {
    // `Cargo.toml` stands in for a component file: the host, not this crate, reads it.
    Workload::from_yaml(
        yaml,
        Path::new("w.yaml"),
        Path::new(env!("CARGO_MANIFEST_DIR")),
    )
}

fn problems(yaml: &str) -> Vec<String> {
    match parse(yaml) {
        Ok(w) => panic!("expected problems, got {w:?}"),
        Err(e) => e
            .diagnostics
            .iter()
            .map(|d| format!("{}: {}", d.pos, d.message))
            .collect(),
    }
}

const GOOD: &str = "\
apiVersion: trellis.dev/v1alpha1
kind: Workload
name: shop
components:
  api:
    source: Cargo.toml
    config: {greeting: hi, port: 8080}
    env: {MODE: dev}
    limits: {memory: 64MiB, timeout: 2s, concurrency: 8}
    grants:
      network: true
      preopens: [{host: src, guest: /src}]
    bindings:
      wasi:*: host
      trellis:shop/pricing: {component: pricing}
      wasi:keyvalue/store: {provider: kv, timeout: 1s, config: {bucket: carts}}
  pricing:
    source: Cargo.toml
    bindings: {wasi:*: host}
routes:
  - {component: api, host: shop.example.com, path: /api}
  - {component: api}
";

#[test]
fn a_full_manifest_decodes() -> Result<(), ManifestError> {
    let w = parse(GOOD)?;
    assert_eq!(w.name, "shop");
    let api = &w.components[0];
    assert_eq!(api.config.get("port").map(String::as_str), Some("8080"));
    assert_eq!(api.limits.memory, 64 << 20);
    assert_eq!(api.limits.concurrency, 8);
    assert!(api.grants.network);
    assert!(api.grants.preopens[0].readonly);
    assert_eq!(api.bindings.len(), 3);
    assert!(
        matches!(&api.bindings[2].target, BindingTarget::Provider { name, config, .. } if name == "kv" && config["bucket"] == "carts")
    );
    assert_eq!(w.routes[1].path, "/");
    assert_eq!(w.routes[0].pos.line, 21);
    Ok(())
}

#[test]
fn every_problem_is_reported_at_once_with_its_position() {
    let got = problems(
        "\
apiVersion: trellis.dev/v1alpha1
kind: Workload
name: Shop
components:
  api:
    source: missing.wasm
    limits: {memory: lots, timout: 2s}
    bindings:
      wasi:*: host
      trellis:shop/pricing: {component: nowhere}
      acme:x/y: {provider: a, workload: b}
routes:
  - {component: ghost, path: nope}
",
    );
    let expected = [
        "3:7: the workload name `Shop` is not a valid name",
        "6:13: component file",
        "7:22: limits.memory: `lots` is not a size",
        "7:28: unknown field `timout` in limits",
        "10:7: binding `trellis:shop/pricing` names component `nowhere`",
        "11:17: binding `acme:x/y` must name exactly one target, found 2",
        "13:5: route names component `ghost`",
        "13:5: route path `nope` must start with `/`",
    ];
    for want in expected {
        assert!(
            got.iter().any(|g| g.starts_with(want)),
            "missing {want:?} in {got:#?}"
        );
    }
    assert_eq!(got.len(), expected.len(), "{got:#?}");
}

#[test]
fn unknown_fields_suggest_the_near_name() {
    let err =
        parse("apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: a\ncomponets: {}\n").err();
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        text.contains("w.yaml:4:1: unknown field `componets` in the workload"),
        "{text}"
    );
    assert!(text.contains("did you mean `components`?"), "{text}");
    assert!(
        text.contains("missing the required field `components`"),
        "{text}"
    );
}

#[test]
fn malformed_yaml_is_a_positioned_error() {
    let got = problems("apiVersion: [\nname: x\n");
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("invalid YAML"), "{got:?}");
}

#[test]
fn wrong_shapes_are_named() {
    let got = problems("- just\n- a list\n");
    assert_eq!(got, ["1:1: the workload must be a mapping, found a list"]);
}

#[test]
fn link_cycles_are_refused() {
    let got = problems(
        "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: c\ncomponents:\n  a: {source: Cargo.toml, bindings: {x:y/z: {component: b}}}\n  b: {source: Cargo.toml, bindings: {x:y/w: {component: a}}}\n",
    );
    assert!(
        got.iter().any(|g| g.contains("cycle: a -> b -> a")),
        "{got:?}"
    );
}

#[test]
fn registry_and_lattice_sources_parse_and_other_schemes_are_refused() {
    let hex = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";
    let workload = Workload::from_yaml(
        &format!("apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: c\ncomponents:\n  a: {{source: 'oci://ghcr.io/x/y:1'}}\n  b: {{source: 'lattice://sha256:{hex}'}}\n"),
        Path::new("m.yaml"),
        Path::new("."),
    )
    .map_err(|e| e.to_string());
    let sources: Result<Vec<String>, String> =
        workload.map(|w| w.components.iter().map(|c| c.source.to_string()).collect());
    assert_eq!(
        sources,
        Ok(vec![
            "oci://ghcr.io/x/y:1".to_string(),
            format!("lattice://sha256:{hex}")
        ])
    );
    let got = problems(
        "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: c\ncomponents:\n  a: {source: 'https://x/y.wasm'}\n",
    );
    assert!(
        got.iter()
            .any(|g| g.contains("5:") && g.contains("`https://` sources are not supported")),
        "{got:?}"
    );
}

/// The committed JSON Schema names exactly the fields the decoder accepts.
#[test]
fn the_json_schema_matches_the_decoder() -> Result<(), Box<dyn std::error::Error>> {
    use crate::manifest::*;
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schema/workload.schema.json"))?;
    let keys = |pointer: &str| -> Vec<String> {
        let mut keys: Vec<String> = schema
            .pointer(pointer)
            .and_then(|v| v.as_object())
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    };
    let sorted = |fields: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(keys("/properties"), sorted(WORKLOAD_FIELDS));
    assert_eq!(
        keys("/$defs/component/properties"),
        sorted(COMPONENT_FIELDS)
    );
    assert_eq!(
        keys("/$defs/component/properties/limits/properties"),
        sorted(LIMITS_FIELDS)
    );
    assert_eq!(
        keys("/$defs/component/properties/grants/properties"),
        sorted(GRANTS_FIELDS)
    );
    assert_eq!(
        keys("/$defs/component/properties/grants/properties/preopens/items/properties"),
        sorted(PREOPEN_FIELDS)
    );
    assert_eq!(keys("/$defs/route/properties"), sorted(ROUTE_FIELDS));
    assert_eq!(keys("/$defs/export/properties"), sorted(EXPORT_FIELDS));
    assert_eq!(keys("/properties/deploy/properties"), sorted(DEPLOY_FIELDS));
    assert_eq!(
        keys("/$defs/binding/oneOf/1/properties"),
        sorted(BINDING_FIELDS)
    );
    Ok(())
}

/// The example manifests in the repository decode.
#[test]
fn the_example_manifests_are_valid() -> Result<(), ManifestError> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for file in [
        "examples/counter/workload.yaml",
        "examples/counter/lattice.yaml",
        "examples/counter/greetings.yaml",
        "examples/counter/distributed.yaml",
        "tests/manifests/limits.yaml",
        "tests/manifests/stuck-greetings.yaml",
    ] {
        Workload::from_file(&root.join(file))?;
    }
    Ok(())
}

/// Exports name a component of the workload and an interface, once each.
#[test]
fn exports_are_checked() {
    let got = problems(
        "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: e\ncomponents:\n  a: {source: 'x.wat'}\nexports:\n  - {interface: 'acme:shop/pricing', component: b}\n  - {interface: 'acme:shop', component: a}\n  - {interface: 'acme:shop/pricing', component: a}\n  - {interface: 'acme:shop/tax', component: a, extra: 1}\n",
    );
    let expect = [
        "7:5: export names component `b`, which the workload does not have",
        "8:17: `acme:shop` is not an interface",
        "9:5: `acme:shop/pricing` is already exported at 7:5",
        "10:48: unknown field `extra` in an export",
    ];
    for e in expect {
        assert!(got.iter().any(|g| g.contains(e)), "{e}: {got:?}");
    }
}

/// `replicas: 0` is refused with the reason and what to do instead.
#[test]
fn zero_replicas_are_refused() {
    let got = problems(
        "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: z\ncomponents:\n  a: {source: 'x.wat'}\ndeploy:\n  replicas: 0\n",
    );
    assert!(
        got.iter()
            .any(|g| g.contains("7:13: deploy.replicas is 0, which would run nothing")),
        "{got:?}"
    );
}

#[test]
fn http_grants_match_hosts_ports_and_wildcards() {
    let grants = |patterns: &[&str]| Grants {
        http: Some(patterns.iter().map(|p| p.to_string()).collect()),
        ..Default::default()
    };
    let g = grants(&["api.example.com", "*.example.org", "svc.local:8443"]);
    assert!(g.allows_http("api.example.com", 443, false));
    assert!(g.allows_http("API.Example.com.", 80, false));
    assert!(g.allows_http("a.b.example.org", 80, false));
    assert!(!g.allows_http("example.org", 80, false));
    assert!(g.allows_http("svc.local", 8443, false));
    assert!(!g.allows_http("svc.local", 443, false));
    assert!(!g.allows_http("169.254.169.254", 80, false));
    assert!(!g.allows_http(".", 80, false));
    assert!(grants(&["*"]).allows_http("anything", 1, false));
    assert!(Grants::default().allows_http("x", 80, true));
    assert!(!Grants::default().allows_http("x", 80, false));
}

/// `deploy.partition` takes `hold` or `reschedule`, and says so at the value.
#[test]
fn partition_policies_are_named() {
    let doc = |policy: &str| {
        format!(
            "apiVersion: trellis.dev/v1alpha1\nkind: Workload\nname: z\ncomponents:\n  a: {{source: 'x.wat'}}\ndeploy:\n  partition: {policy}\n"
        )
    };
    let got = problems(&doc("wait"));
    assert!(
        got.iter()
            .any(|g| g.contains("7:14: deploy.partition is `wait`; use `hold` or `reschedule`")),
        "{got:?}"
    );
    for ok in ["hold", "reschedule"] {
        let got = problems(&doc(ok));
        assert!(!got.iter().any(|g| g.contains("partition")), "{got:?}");
    }
}
