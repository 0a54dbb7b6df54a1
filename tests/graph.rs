//! `hacompile graph`: the SVG renders (resvg, with the system's fonts) to a
//! picture that is not empty and shows every service; Mermaid names every
//! service and route; both are byte-identical across runs.

mod support;

use std::fs;

use support::*;

fn graph(spec: &str, format: &str) -> String {
    let out = bin().args(["graph", spec, "--format", format]).output().expect("runs");
    assert!(out.status.success(), "{spec}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// Renders SVG text; returns (width, height, share of non-white pixels).
fn render(svg: &str) -> (u32, u32, f64) {
    let mut options = resvg::usvg::Options::default();
    options.fontdb_mut().load_system_fonts();
    assert!(!options.fontdb.is_empty(), "fonts to draw the labels with (tests/setup.sh installs fonts-dejavu-core)");
    let tree = resvg::usvg::Tree::from_str(svg, &options).expect("valid SVG");
    let size = tree.size().to_int_size();
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).expect("a picture");
    resvg::render(&tree, resvg::tiny_skia::Transform::default(), &mut pixmap.as_mut());
    if let Ok(dir) = std::env::var("HACOMPILE_GRAPH_OUT") {
        let n = fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        pixmap.save_png(format!("{dir}/render-{n}.png")).expect("png");
    }
    let inked = pixmap.pixels().iter().filter(|p| p.red() < 200 || p.green() < 200 || p.blue() < 200).count();
    (size.width(), size.height(), inked as f64 / f64::from(size.width() * size.height()))
}

#[test]
fn svg_renders_to_a_picture_of_every_service() {
    for (spec, services) in [
        ("examples/ha-postgres.toml", vec!["pg-primary", "pg-replica-1"]),
        ("examples/ha-patroni.toml", vec!["pg-1", "pg-2", "pg-3", "etcd-1", "etcd-2", "etcd-3"]),
        ("examples/ha-postgres-backup.toml", vec!["pg-primary", "pg-replica-1", "pgBackRest repository"]),
    ] {
        let svg = graph(spec, "svg");
        assert_eq!(svg, graph(spec, "svg"), "{spec}: deterministic");
        for s in &services {
            assert!(svg.contains(&format!(">{s}</text>")), "{spec}: draws {s}");
        }
        let (w, h, inked) = render(&svg);
        assert!(w >= 400 && h >= 200, "{spec}: {w}x{h}");
        assert!(inked > 0.05, "{spec}: the picture has boxes, lines and text ({:.1}% inked)", inked * 100.0);
        // Without the text, less ink: the labels are drawn, not dropped.
        let no_text: String =
            svg.lines().filter(|l| !l.trim_start().starts_with("<text")).collect::<Vec<_>>().join("\n");
        let (_, _, bare) = render(&no_text);
        assert!(inked > bare * 1.05, "{spec}: labels drawn ({inked} vs {bare})");
        if let Ok(dir) = std::env::var("HACOMPILE_GRAPH_OUT") {
            let name = spec.trim_start_matches("examples/").replace(".toml", ".svg");
            fs::write(format!("{dir}/{name}"), &svg).expect("writable");
        }
    }
}

#[test]
fn mermaid_names_every_service_and_route() {
    let m = graph("examples/ha-patroni.toml", "mermaid");
    assert_eq!(m, graph("examples/ha-patroni.toml", "mermaid"), "deterministic");
    assert!(m.contains("flowchart LR"));
    for id in ["pg_1", "pg_2", "pg_3", "etcd_1", "haproxy", "clients"] {
        assert!(m.lines().any(|l| l.trim_start().starts_with(id)), "declares {id}:\n{m}");
    }
    assert!(m.contains("haproxy -->|\"writes if leader (/primary)\"| pg_1"));
    assert!(m.contains("pg_3 -.->|\"leader lock\"| dcs"));
    assert!(m.contains("subgraph dcs"));
    let pinned = graph("examples/ha-postgres.toml", "mermaid");
    assert!(pinned.contains("haproxy -->|\"writes\"| pg_primary"));
    assert!(
        pinned.contains("haproxy -.->|\"reads while no replica is up\"| pg_primary"),
        "the primary is the reads' fallback"
    );
    assert!(pinned.contains("haproxy -->|\"reads\"| pg_replica_1"));
    assert!(!pinned.contains("pgbackrest_repository"), "no repository without [backup]");
    // The backup path: every database service archives into the repository
    // (any of them may be the primary), which says where it is.
    let backup = graph("examples/ha-postgres-backup.toml", "mermaid");
    for db in ["pg_primary", "pg_replica_1"] {
        assert!(
            backup.contains(&format!("{db} -->|\"WAL archive, base backups (the primary)\"| pgbackrest_repository")),
            "{db} archives into the repository:\n{backup}"
        );
    }
    assert!(backup.contains("volume pgbackrest-repo<br/>NFS 10.0.0.5:/export/pgbackrest<br/>encrypted"), "{backup}");
}

#[test]
fn an_invalid_spec_draws_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = dir.path().join("bad.toml");
    fs::write(&spec, "stack = \"x\"\n").expect("writable");
    let out = bin().arg("graph").arg(&spec).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn the_pictures_in_docs_are_current() {
    for name in ["ha-patroni", "ha-postgres"] {
        let committed = fs::read_to_string(format!("{ROOT}/docs/{name}.svg")).expect("committed picture");
        assert!(
            committed == graph(&format!("examples/{name}.toml"), "svg"),
            "docs/{name}.svg is stale: run `hacompile graph examples/{name}.toml > docs/{name}.svg`"
        );
    }
}
