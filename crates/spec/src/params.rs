//! PostgreSQL server settings a spec may set under `[postgres.parameters]`:
//! which names exist, which hacompile owns, and what their values look like.

/// What a setting's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A size: a number of the setting's base unit, or with kB/MB/GB/TB.
    Memory,
    /// A time: a number of the setting's base unit, or with us/ms/s/min/h/d.
    Time,
    Bool,
    Int,
    Real,
    /// Free text (an enum or a list); checked for what a command line and a
    /// stack file cannot carry.
    Text,
}

/// Settings hacompile writes itself, with the spec key that controls each.
pub const OWNED: &[(&str, &str)] = &[
    ("listen_addresses", "fixed: every interface of the container"),
    ("port", "fixed: 5432 inside the overlay network"),
    ("max_connections", "`postgres.max_connections`"),
    ("wal_keep_size", "`postgres.wal_keep_size`"),
    ("max_slot_wal_keep_size", "`postgres.max_slot_wal_keep_size`"),
    ("max_wal_senders", "derived from the replica count"),
    ("max_replication_slots", "derived from the replica count"),
    ("hot_standby_feedback", "`postgres.hot_standby_feedback`"),
    ("cluster_name", "each service's name (replicas report it as application_name)"),
    ("primary_conninfo", "written by the replica's base backup"),
    ("primary_slot_name", "written by the replica's base backup"),
    ("data_directory", "the image's PGDATA"),
    ("hba_file", "the image's"),
    ("ident_file", "the image's"),
    ("config_file", "the image's"),
    ("unix_socket_directories", "the image's"),
];

/// Known settings (PostgreSQL 13-17) and their kinds.
pub const KNOWN: &[(&str, Kind)] = &[
    ("shared_buffers", Kind::Memory),
    ("effective_cache_size", Kind::Memory),
    ("work_mem", Kind::Memory),
    ("maintenance_work_mem", Kind::Memory),
    ("autovacuum_work_mem", Kind::Memory),
    ("temp_buffers", Kind::Memory),
    ("wal_buffers", Kind::Memory),
    ("max_wal_size", Kind::Memory),
    ("min_wal_size", Kind::Memory),
    ("logical_decoding_work_mem", Kind::Memory),
    ("temp_file_limit", Kind::Memory),
    ("log_temp_files", Kind::Memory),
    ("huge_pages", Kind::Text),
    ("dynamic_shared_memory_type", Kind::Text),
    ("max_worker_processes", Kind::Int),
    ("max_parallel_workers", Kind::Int),
    ("max_parallel_workers_per_gather", Kind::Int),
    ("max_parallel_maintenance_workers", Kind::Int),
    ("max_locks_per_transaction", Kind::Int),
    ("max_pred_locks_per_transaction", Kind::Int),
    ("max_prepared_transactions", Kind::Int),
    ("superuser_reserved_connections", Kind::Int),
    ("effective_io_concurrency", Kind::Int),
    ("maintenance_io_concurrency", Kind::Int),
    ("random_page_cost", Kind::Real),
    ("seq_page_cost", Kind::Real),
    ("cpu_tuple_cost", Kind::Real),
    ("cpu_index_tuple_cost", Kind::Real),
    ("cpu_operator_cost", Kind::Real),
    ("parallel_setup_cost", Kind::Real),
    ("parallel_tuple_cost", Kind::Real),
    ("default_statistics_target", Kind::Int),
    ("jit", Kind::Bool),
    ("checkpoint_timeout", Kind::Time),
    ("checkpoint_completion_target", Kind::Real),
    ("checkpoint_warning", Kind::Time),
    ("wal_level", Kind::Text),
    ("wal_compression", Kind::Text),
    ("wal_log_hints", Kind::Bool),
    ("wal_writer_delay", Kind::Time),
    ("commit_delay", Kind::Int),
    ("synchronous_commit", Kind::Text),
    ("synchronous_standby_names", Kind::Text),
    ("full_page_writes", Kind::Bool),
    ("fsync", Kind::Bool),
    ("archive_timeout", Kind::Time),
    ("wal_receiver_timeout", Kind::Time),
    ("wal_receiver_status_interval", Kind::Time),
    ("wal_retrieve_retry_interval", Kind::Time),
    ("wal_sender_timeout", Kind::Time),
    ("max_standby_streaming_delay", Kind::Time),
    ("max_standby_archive_delay", Kind::Time),
    ("recovery_min_apply_delay", Kind::Time),
    ("hot_standby", Kind::Bool),
    ("statement_timeout", Kind::Time),
    ("lock_timeout", Kind::Time),
    ("idle_in_transaction_session_timeout", Kind::Time),
    ("idle_session_timeout", Kind::Time),
    ("deadlock_timeout", Kind::Time),
    ("tcp_keepalives_idle", Kind::Time),
    ("tcp_keepalives_interval", Kind::Time),
    ("tcp_keepalives_count", Kind::Int),
    ("tcp_user_timeout", Kind::Time),
    ("client_connection_check_interval", Kind::Time),
    ("authentication_timeout", Kind::Time),
    ("password_encryption", Kind::Text),
    ("ssl", Kind::Bool),
    ("autovacuum", Kind::Bool),
    ("autovacuum_max_workers", Kind::Int),
    ("autovacuum_naptime", Kind::Time),
    ("autovacuum_vacuum_threshold", Kind::Int),
    ("autovacuum_vacuum_scale_factor", Kind::Real),
    ("autovacuum_analyze_threshold", Kind::Int),
    ("autovacuum_analyze_scale_factor", Kind::Real),
    ("autovacuum_vacuum_cost_delay", Kind::Time),
    ("autovacuum_vacuum_cost_limit", Kind::Int),
    ("autovacuum_freeze_max_age", Kind::Int),
    ("vacuum_cost_delay", Kind::Time),
    ("vacuum_cost_limit", Kind::Int),
    ("bgwriter_delay", Kind::Time),
    ("bgwriter_lru_maxpages", Kind::Int),
    ("bgwriter_lru_multiplier", Kind::Real),
    ("log_min_duration_statement", Kind::Time),
    ("log_autovacuum_min_duration", Kind::Time),
    ("log_checkpoints", Kind::Bool),
    ("log_connections", Kind::Bool),
    ("log_disconnections", Kind::Bool),
    ("log_lock_waits", Kind::Bool),
    ("log_statement", Kind::Text),
    ("log_line_prefix", Kind::Text),
    ("log_min_messages", Kind::Text),
    ("log_min_error_statement", Kind::Text),
    ("log_timezone", Kind::Text),
    ("log_destination", Kind::Text),
    ("logging_collector", Kind::Bool),
    ("track_io_timing", Kind::Bool),
    ("track_activity_query_size", Kind::Memory),
    ("track_functions", Kind::Text),
    ("shared_preload_libraries", Kind::Text),
    ("session_preload_libraries", Kind::Text),
    ("timezone", Kind::Text),
    ("datestyle", Kind::Text),
    ("default_text_search_config", Kind::Text),
    ("lc_messages", Kind::Text),
    ("lc_monetary", Kind::Text),
    ("lc_numeric", Kind::Text),
    ("lc_time", Kind::Text),
    ("search_path", Kind::Text),
    ("default_transaction_isolation", Kind::Text),
    ("random_page_cost", Kind::Real),
    ("enable_partitionwise_join", Kind::Bool),
    ("enable_partitionwise_aggregate", Kind::Bool),
    ("pg_stat_statements.max", Kind::Int),
    ("pg_stat_statements.track", Kind::Text),
];

/// The kind of a known setting.
pub fn kind(name: &str) -> Option<Kind> {
    KNOWN.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

/// Why a setting cannot be set here, if hacompile owns it.
pub fn owned(name: &str) -> Option<&'static str> {
    OWNED.iter().find(|(n, _)| *n == name).map(|(_, why)| *why)
}

/// Checks a value written as text against its kind.
pub fn check_text(kind: Kind, value: &str) -> Result<(), &'static str> {
    if value.chars().any(|c| c.is_control() || hacompile_boundary::text::is_unsafe(c)) {
        return Err("a value cannot hold control characters or line breaks");
    }
    if value.contains('$') {
        return Err("`$` would be read by docker as a variable; PostgreSQL settings do not need it");
    }
    let number_with_unit = |units: &[&str]| {
        let v = value.trim();
        let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &v[digits.len()..];
        !digits.is_empty()
            && digits.trim().parse::<f64>().is_ok_and(|n| n >= 0.0 || digits.trim() == "-1")
            && (unit.is_empty() || units.contains(&unit))
    };
    match kind {
        Kind::Memory if !number_with_unit(&["B", "kB", "MB", "GB", "TB"]) && value.trim() != "-1" => {
            Err("a size is a number with a unit of kB, MB, GB or TB (case matters), e.g. `64MB`")
        }
        Kind::Time if !number_with_unit(&["us", "ms", "s", "min", "h", "d"]) && value.trim() != "-1" => {
            Err("a time is a number with a unit of us, ms, s, min, h or d, e.g. `30s`")
        }
        Kind::Bool
            if !matches!(
                value.to_ascii_lowercase().as_str(),
                "on" | "off" | "true" | "false" | "yes" | "no" | "1" | "0"
            ) =>
        {
            Err("a boolean is on or off")
        }
        Kind::Int if value.trim().parse::<i64>().is_err() => Err("expected a whole number"),
        Kind::Real if value.trim().parse::<f64>().is_err() => Err("expected a number"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_by_kind() {
        assert!(check_text(Kind::Memory, "64MB").is_ok());
        assert!(check_text(Kind::Memory, "64mb").is_err());
        assert!(check_text(Kind::Time, "30s").is_ok());
        assert!(check_text(Kind::Time, "30 parsecs").is_err());
        assert!(check_text(Kind::Bool, "on").is_ok());
        assert!(check_text(Kind::Text, "%m [%p] ").is_ok());
        assert!(check_text(Kind::Text, "$HOME").is_err());
        assert!(check_text(Kind::Text, "a\nb").is_err());
        assert!(kind("work_mem").is_some() && owned("port").is_some() && kind("wrok_mem").is_none());
    }
}
