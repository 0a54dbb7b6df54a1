//! The rule registry: every rule once, by code. Codes are stable; a retired
//! code is never reused.

use crate::context::StackCx;
use crate::finding::{Family, Hit, Severity};
use crate::source::Source;
use crate::spec::SpecCx;

mod backup;
mod etcd;
pub(crate) mod images;
pub(crate) mod interpolation;
mod mounts;
mod ports;

mod hc001_unreadable_input;
mod hc002_suppression_without_reason;
mod hc003_inline_suppression_forbidden;
mod hc004_invalid_spec;
mod hc101_plaintext_secret_in_environment;
mod hc102_credentials_in_url;
mod hc103_secret_interpolation_default;
mod hc104_secret_in_command;
mod hc105_provider_token;
mod hc106_high_entropy_value;
mod hc107_secret_in_labels;
mod hc108_credentials_in_haproxy_cfg;
mod hc109_credentials_in_patroni_config;
mod hc201_untagged_image;
mod hc202_floating_tag;
mod hc203_image_not_pinned;
mod hc204_invalid_image_reference;
mod hc205_digest_differs_from_lock;
mod hc301_ignored_by_swarm;
mod hc302_depends_on_ignored;
mod hc303_depends_on_long_form;
mod hc304_duplicate_key;
mod hc305_unsupported_version;
mod hc306_profiles_rejected_by_swarm;
mod hc307_extends_rejected_by_swarm;
mod hc308_env_file_long_form;
mod hc309_host_ip_ignored_by_swarm;
mod hc401_database_without_placement;
mod hc402_database_volume_shared;
mod hc403_start_first_database;
mod hc404_short_stop_grace_period;
mod hc406_global_proxy_ingress_ports;
mod hc407_haproxy_mixed_backend;
mod hc408_restart_policy_abandons_task;
mod hc409_alpine_variant_mismatch;
mod hc410_etcd_cluster_size;
mod hc411_etcd_member_replicated;
mod hc412_patroni_role_blind_check;
mod hc413_patroni_timing;
mod hc414_database_without_wal_archiving;
mod hc415_backup_without_retention;
mod hc416_backup_repository_on_data_volume;
mod hc501_privileged;
mod hc502_docker_socket_mount;
mod hc503_sensitive_host_mount;
mod hc504_host_namespace;
mod hc505_capabilities_not_dropped;
mod hc506_no_resource_limits;
mod hc507_no_healthcheck;
mod hc508_database_port_published;
pub(crate) mod hc509_admin_port_published;
mod hc510_overlay_not_encrypted;
mod hc511_secret_file_in_repository;
mod hc512_port_on_all_interfaces;
mod hc513_dangerous_capability;
mod hc514_selinux_labels_disabled;
mod hc515_security_profile_unconfined;
mod hc516_runs_as_root;
mod hc517_dcs_port_published;
mod hc518_backup_repository_unencrypted;
mod hc519_exporter_as_superuser;

/// A rule's check over a stack file.
pub type StackCheck = fn(&StackCx<'_>, &mut Vec<Hit>);

/// What a stack rule's `check` reports in the stack `yaml` (named `name`,
/// whose name can set the target): the text at each finding, as written.
#[cfg(test)]
pub(crate) fn stack_hits(name: &str, yaml: &str, check: StackCheck) -> Vec<String> {
    let src = crate::source::Source::new(name, yaml.to_owned());
    let doc = crate::yaml::Doc::parse(&src).expect("valid YAML");
    let cx = StackCx::new(&src, &doc, doc.root.expect("a root"), None, None);
    let mut out = Vec::new();
    check(&cx, &mut out);
    out.into_iter().map(|h| src.text[h.span].to_owned()).collect()
}

/// How a rule looks at a file.
#[derive(Clone, Copy)]
pub enum Check {
    /// Reported by the engine itself (unreadable input, suppressions).
    Engine,
    Stack(StackCheck),
    Spec(fn(&SpecCx<'_>, &mut Vec<Hit>)),
    StackAndSpec(StackCheck, fn(&SpecCx<'_>, &mut Vec<Hit>)),
    Haproxy(fn(&Source, &mut Vec<Hit>)),
    /// A Patroni configuration file: its document and root mapping.
    Patroni(fn(&crate::yaml::Doc<'_>, crate::yaml::NodeId, &mut Vec<Hit>)),
}

/// A rule: its stable code, a name that reads as the problem, and its
/// documentation with the fixed sections `explain` and the rules page show.
#[derive(Clone, Copy)]
pub struct Rule {
    pub code: &'static str,
    pub name: &'static str,
    pub family: Family,
    pub severity: Severity,
    pub summary: &'static str,
    /// Markdown with `## What it does`, `## Why it matters`, `## Example`, `## Fix`.
    pub doc: &'static str,
    pub check: Check,
}

/// Rules whose findings hold only for `docker stack deploy`: not run on a
/// file whose target is compose (`hacompile lint --target`, `target` in
/// `.hacompile.toml`, or detected from its name and `deploy:`). Kept here,
/// not as a field of every rule's table entry, so adding it touched no rule file.
pub const SWARM_ONLY: &[&str] = &[
    "HC301", "HC302", "HC303", "HC305", "HC306", "HC307", "HC308", "HC309", "HC401", "HC402", "HC403", "HC406",
    "HC408", "HC510",
];

impl Rule {
    /// The targets this rule runs for.
    pub fn targets(&self) -> &'static [crate::config::Target] {
        use crate::config::Target;
        if SWARM_ONLY.contains(&self.code) { &[Target::Swarm] } else { &[Target::Swarm, Target::Compose] }
    }

    pub fn applies_to(&self, target: crate::config::Target) -> bool {
        self.targets().contains(&target)
    }

    /// `swarm stacks only` or `swarm stacks and compose files`, as the docs say it.
    pub fn targets_text(&self) -> &'static str {
        if self.targets().len() == 1 { "swarm stacks only" } else { "swarm stacks and compose files" }
    }
}

/// The doc sections every rule must have, in order.
pub const DOC_SECTIONS: [&str; 4] = ["## What it does", "## Why it matters", "## Example", "## Fix"];

/// Every rule, sorted by code.
pub const RULES: &[Rule] = &[
    hc001_unreadable_input::RULE,
    hc002_suppression_without_reason::RULE,
    hc003_inline_suppression_forbidden::RULE,
    hc004_invalid_spec::RULE,
    hc101_plaintext_secret_in_environment::RULE,
    hc102_credentials_in_url::RULE,
    hc103_secret_interpolation_default::RULE,
    hc104_secret_in_command::RULE,
    hc105_provider_token::RULE,
    hc106_high_entropy_value::RULE,
    hc107_secret_in_labels::RULE,
    hc108_credentials_in_haproxy_cfg::RULE,
    hc109_credentials_in_patroni_config::RULE,
    hc201_untagged_image::RULE,
    hc202_floating_tag::RULE,
    hc203_image_not_pinned::RULE,
    hc204_invalid_image_reference::RULE,
    hc205_digest_differs_from_lock::RULE,
    hc301_ignored_by_swarm::RULE,
    hc302_depends_on_ignored::RULE,
    hc303_depends_on_long_form::RULE,
    hc304_duplicate_key::RULE,
    hc305_unsupported_version::RULE,
    hc306_profiles_rejected_by_swarm::RULE,
    hc307_extends_rejected_by_swarm::RULE,
    hc308_env_file_long_form::RULE,
    hc309_host_ip_ignored_by_swarm::RULE,
    hc401_database_without_placement::RULE,
    hc402_database_volume_shared::RULE,
    hc403_start_first_database::RULE,
    hc404_short_stop_grace_period::RULE,
    hc406_global_proxy_ingress_ports::RULE,
    hc407_haproxy_mixed_backend::RULE,
    hc408_restart_policy_abandons_task::RULE,
    hc409_alpine_variant_mismatch::RULE,
    hc410_etcd_cluster_size::RULE,
    hc411_etcd_member_replicated::RULE,
    hc412_patroni_role_blind_check::RULE,
    hc413_patroni_timing::RULE,
    hc414_database_without_wal_archiving::RULE,
    hc415_backup_without_retention::RULE,
    hc416_backup_repository_on_data_volume::RULE,
    hc501_privileged::RULE,
    hc502_docker_socket_mount::RULE,
    hc503_sensitive_host_mount::RULE,
    hc504_host_namespace::RULE,
    hc505_capabilities_not_dropped::RULE,
    hc506_no_resource_limits::RULE,
    hc507_no_healthcheck::RULE,
    hc508_database_port_published::RULE,
    hc509_admin_port_published::RULE,
    hc510_overlay_not_encrypted::RULE,
    hc511_secret_file_in_repository::RULE,
    hc512_port_on_all_interfaces::RULE,
    hc513_dangerous_capability::RULE,
    hc514_selinux_labels_disabled::RULE,
    hc515_security_profile_unconfined::RULE,
    hc516_runs_as_root::RULE,
    hc517_dcs_port_published::RULE,
    hc518_backup_repository_unencrypted::RULE,
    hc519_exporter_as_superuser::RULE,
];

/// Retired codes, never reused, with what replaced them.
pub const RETIRED: &[(&str, &str, &str)] = &[(
    "HC405",
    "unbounded-restarts",
    "retired: it recommended a `max_attempts` bound, which makes swarm abandon a database for good; see HC408",
)];

/// Why a code is retired, if it is.
pub fn retired(code: &str) -> Option<&'static str> {
    RETIRED.iter().find(|(c, name, _)| c.eq_ignore_ascii_case(code) || *name == code).map(|(_, _, why)| *why)
}

pub fn find(code: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.code.eq_ignore_ascii_case(code) || r.name == code)
}

pub const UNREADABLE: &str = "HC001";
pub const SUPPRESSION_WITHOUT_REASON: &str = "HC002";
pub const INLINE_SUPPRESSION_FORBIDDEN: &str = "HC003";
pub const INVALID_SPEC: &str = "HC004";
pub const PLAINTEXT_SECRET: &str = "HC101";
pub const DUPLICATE_KEY: &str = "HC304";

/// A rule's page: heading, severity and family, then its doc sections.
pub fn explain(rule: &Rule) -> String {
    format!(
        "# {} {}\n\n{}\n\nSeverity: {}. Family: {}. Applies to: {}.\n{}",
        rule.code,
        rule.name,
        rule.summary,
        rule.severity.as_str(),
        rule.family.title(),
        rule.targets_text(),
        rule.doc
    )
}

/// The generated rules page (docs/rules.md).
pub fn rules_page() -> String {
    let mut out = String::from(
        "<!-- Generated by `hacompile explain --markdown`; do not edit. A test fails when it is stale. -->\n# hacompile lint rules\n\n| Code | Name | Severity | Summary |\n| --- | --- | --- | --- |\n",
    );
    for r in RULES {
        out.push_str(&format!(
            "| [{}](#{}) | {} | {} | {} |\n",
            r.code,
            r.code.to_ascii_lowercase(),
            r.name,
            r.severity.as_str(),
            r.summary
        ));
    }
    let mut family = None;
    for r in RULES {
        if family != Some(r.family) {
            family = Some(r.family);
            out.push_str(&format!("\n## {}\n", r.family.title()));
        }
        let body = r.doc.replace("\n## ", "\n#### ");
        out.push_str(&format!(
            "\n### {}\n\n`{}` · {} · {} · applies to {}\n{}",
            r.code,
            r.name,
            r.severity.as_str(),
            r.summary,
            r.targets_text(),
            body
        ));
    }
    out
}
