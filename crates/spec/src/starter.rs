//! A starter spec: the commented `spec.toml` that `hacompile init` writes
//! for a few answers. Every value taken from the answers goes through the
//! TOML string serializer, and the text is parsed and validated by the
//! caller before it is written, so an answer can neither break the file nor
//! yield a spec that does not build.

use std::fmt::Write;

/// The fewest and most database nodes per topology, as the validator counts
/// them (pinned: the primary plus 1..=16 replicas; patroni: 2..=16 members).
pub const MIN_NODES: usize = 2;
pub const MAX_NODES_PINNED: usize = 17;
pub const MAX_NODES_PATRONI: usize = 16;
/// etcd members of a starter: survives the loss of one.
pub const DCS_MEMBERS: usize = 3;

/// The secrets every starter declares (and the patroni topology's own).
const SECRETS: [(&str, &str); 3] = [
    ("postgres_user", "\"$PGUSER\"     "),
    ("postgres_password", "\"$PGPASSWORD\" "),
    ("replication_password", "\"$REPLPASS\"   "),
];
const PATRONI_SECRET: (&str, &str) = ("patroni_api_password", "\"$PATRONIPASS\"");
const STATS_SECRET: &str = "haproxy_stats_users";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StarterTopology {
    Pinned,
    Patroni,
}

/// What `hacompile init` asked.
#[derive(Clone, Debug)]
pub struct Answers {
    pub topology: StarterTopology,
    /// Database nodes: the primary and its replicas (pinned) or the members (patroni).
    pub nodes: usize,
    pub stack: String,
    pub postgres_image: String,
    pub haproxy_image: String,
    /// Topology `patroni` only.
    pub patroni_image: String,
    /// Topology `patroni` only.
    pub etcd_image: String,
    /// The spec's file name, as the header's commands name it; one that is
    /// not plain (`[A-Za-z0-9._-]`) is shown as `spec.toml`.
    pub file_name: String,
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The replica label values of the pinned topology: one distinct label per
/// node, `replica` when there is only one (as in the README's runbook).
fn replica_label(i: usize, replicas: usize) -> String {
    if replicas == 1 { "replica".to_owned() } else { format!("replica-{i}") }
}

/// The commented spec for `answers`.
pub fn render(a: &Answers) -> String {
    let mut t = String::new();
    header(&mut t, a);
    common_head(&mut t, a);
    match a.topology {
        StarterTopology::Pinned => pinned(&mut t, a),
        StarterTopology::Patroni => patroni(&mut t, a),
    }
    haproxy(&mut t, a);
    t
}

fn header(t: &mut String, a: &Answers) {
    let stack = &a.stack;
    let plain = !a.file_name.is_empty()
        && !a.file_name.starts_with('-')
        && a.file_name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    let file = if plain { a.file_name.as_str() } else { "spec.toml" };
    let pinned = a.topology == StarterTopology::Pinned;
    let _ = match a.topology {
        StarterTopology::Pinned => writeln!(
            t,
            "# A highly available PostgreSQL cluster on Docker Swarm, written by\n\
             # `hacompile init`: one primary and {} replica(s), each pinned to its own\n\
             # node (no automatic failover: the README's runbook promotes a replica),\n\
             # HAProxy on every node routing writes to the primary and reads to the\n\
             # replicas.",
            a.nodes - 1
        ),
        StarterTopology::Patroni => writeln!(
            t,
            "# A PostgreSQL cluster with automatic failover on Docker Swarm, written by\n\
             # `hacompile init`: {} Patroni members and a {DCS_MEMBERS}-member etcd cluster,\n\
             # HAProxy on every node routing writes to the leader and reads to the\n\
             # replicas within the lag limit.",
            a.nodes
        ),
    };
    t.push_str("#\n# First deploy (run beside this file; the lock goes next to it):\n");
    if pinned {
        t.push_str(&format!("#   hacompile lock {file}            # pins every image by digest in hacompile.lock\n"));
    } else {
        let img = &a.patroni_image;
        let _ = writeln!(
            t,
            "#   hacompile lock {file} --only {0}   # the recipe's base image first\n\
             #   hacompile dockerfile {file} > patroni.Dockerfile   # needs only {0} locked\n\
             #   docker build -f patroni.Dockerfile -t {img} .\n\
             #   docker push {img}\n\
             #   hacompile lock {file}            # pins the members' image, etcd and the rest",
            a.postgres_image
        );
    }
    let _ = writeln!(
        t,
        "#   hacompile lint {file}\n\
         #   hacompile build {file} -o deploy/\n\
         #   docker stack deploy -c deploy/docker-stack.yml {stack}\n\
         #\n\
         # Before deploying, label the nodes (replace node-N by your nodes' names;"
    );
    if pinned {
        t.push_str("# each database server on its own node):\n");
        let replicas = a.nodes - 1;
        t.push_str("#   docker node update --label-add pg.role=primary node-1\n");
        for i in 1..=replicas {
            let _ =
                writeln!(t, "#   docker node update --label-add pg.role={} node-{}", replica_label(i, replicas), i + 1);
        }
    } else {
        t.push_str("# etcd members may share nodes with Patroni members; two members never do):\n");
        for i in 1..=a.nodes.max(DCS_MEMBERS) {
            let mut labels = String::new();
            if i <= a.nodes {
                let _ = write!(labels, " --label-add pg.member={i}");
            }
            if i <= DCS_MEMBERS {
                let _ = write!(labels, " --label-add etcd.member={i}");
            }
            let _ = writeln!(t, "#   docker node update{labels} node-{i}");
        }
    }
    t.push_str("# and create the secrets this spec names (their values never go in this file):\n");
    let mut secrets = SECRETS.to_vec();
    if !pinned {
        secrets.push(PATRONI_SECRET);
    }
    for (name, var) in secrets {
        let _ = writeln!(t, "#   printf '%s' {var} | docker secret create {name} -");
    }
    let _ = writeln!(
        t,
        "#   printf 'userlist hacompile_stats\\n  user admin password %s\\n' \\\n\
         #     \"$(openssl passwd -6)\" | docker secret create {STATS_SECRET} -\n\
         #\n\
         # Every key and its default: the README's \"The spec\" section, or\n\
         # `hacompile schema` for editors.\n"
    );
}

fn common_head(t: &mut String, a: &Answers) {
    let topology = match a.topology {
        StarterTopology::Pinned => "pinned",
        StarterTopology::Patroni => "patroni",
    };
    let _ = writeln!(
        t,
        "# The name you deploy with (`docker stack deploy ... NAME`); it prefixes\n\
         # every service and config name.\n\
         stack = {}\n\
         # pinned: a fixed primary and replicas; patroni: automatic failover.\n\
         topology = {}\n\
         \n\
         # The overlay network the services share; IPsec-encrypted between nodes.\n\
         [network]\n\
         name = \"pg_net\"\n\
         encrypted = true\n\
         \n\
         # Docker secrets, created before the deploy (see the commands above);\n\
         # the spec only names them, so no credential is ever written here.",
        quote(&a.stack),
        quote(topology)
    );
    for (name, _) in SECRETS {
        let _ = writeln!(t, "[secrets.{name}]");
    }
    if a.topology == StarterTopology::Patroni {
        let _ = writeln!(t, "[secrets.{}]", PATRONI_SECRET.0);
    }
    let _ = writeln!(t, "[secrets.{STATS_SECRET}]\n");

    let base = match a.topology {
        StarterTopology::Pinned => {
            "# PostgreSQL: the image every database service runs, the database created\n\
                                    # on first start, and the superuser's credentials (from the secrets)."
        }
        StarterTopology::Patroni => {
            "# PostgreSQL: the base of the members' image (patroni.Dockerfile builds FROM\n\
                                     # it, pinned by digest), the database created on first start, and the\n\
                                     # superuser's credentials (from the secrets)."
        }
    };
    let _ = writeln!(t, "{base}\n[postgres]\nimage = {}", quote(&a.postgres_image));
    if a.topology == StarterTopology::Pinned {
        t.push_str("flavor = \"official\"\n");
    }
    t.push_str(
        "database = \"app\"\n\
         user = { secret = \"postgres_user\" }\n\
         password = { secret = \"postgres_password\" }\n",
    );
    if a.topology == StarterTopology::Pinned {
        t.push_str(
            "# Time for a clean shutdown checkpoint before swarm kills the server.\nstop_grace_period = \"120s\"\n",
        );
    }
    t.push_str(
        "# Limits and reservations of each database service; size them to your nodes.\n\
         resources = { cpus = 2, memory = \"2g\", reserve_cpus = 0.5, reserve_memory = \"1g\" }\n\
         \n\
         # The role replicas stream WAL with; its password is a secret too.\n\
         [postgres.replication]\n\
         user = \"replicator\"\n\
         password = { secret = \"replication_password\" }\n\n",
    );
}

fn pinned(t: &mut String, a: &Answers) {
    let replicas = a.nodes - 1;
    t.push_str(
        "# The primary, pinned to the node labelled for it; its data lives in a\n\
         # volume on that node.\n\
         [postgres.primary]\n\
         constraints = [\"node.labels.pg.role == primary\"]\n\n",
    );
    t.push_str(
        "# The replicas: each streams from the primary and serves reads, on its own\n\
         # node and volume. Add a table to add a replica.\n",
    );
    for i in 1..=replicas {
        let _ = writeln!(
            t,
            "[[postgres.replicas]]\nconstraints = [\"node.labels.pg.role == {}\"]\n",
            replica_label(i, replicas)
        );
    }
}

fn patroni(t: &mut String, a: &Answers) {
    let _ = writeln!(
        t,
        "# Patroni runs PostgreSQL in every member and elects the leader through\n\
         # etcd. The image is built from the emitted patroni.Dockerfile and pushed\n\
         # to your registry (see the steps above); replace the name by yours.\n\
         [patroni]\n\
         image = {}\n\
         # Failover after the leader dies takes at most about ttl seconds.\n\
         ttl = 20\n\
         loop_wait = 5\n\
         retry_timeout = 5\n\
         # A replica further behind than this is never promoted.\n\
         maximum_lag_on_failover = \"1MB\"\n\
         # A commit is acknowledged once a standby has it: no acknowledged write\n\
         # is lost in a failover.\n\
         synchronous_mode = \"on\"\n\
         # A replica further behind leaves the read pool.\n\
         read_lag_limit = \"16MB\"\n\
         # Patroni's REST API (HAProxy's health checks, patronictl) asks for this login.\n\
         rest_api = {{ user = \"patroni\", password = {{ secret = \"{}\" }} }}\n\
         \n\
         # The members: any of them may lead. Each on its own node and volume; add\n\
         # a table to add a member.",
        quote(&a.patroni_image),
        PATRONI_SECRET.0
    );
    for i in 1..=a.nodes {
        let _ = writeln!(t, "[[patroni.members]]\nconstraints = [\"node.labels.pg.member == {i}\"]\n");
    }
    let _ = writeln!(
        t,
        "# The etcd cluster Patroni keeps its leader lock in: {DCS_MEMBERS} members survive the\n\
         # loss of one (an odd number, 3 or 5).\n\
         [dcs]\n\
         image = {}\n\
         \n\
         # One table per etcd member, each on its own node.",
        quote(&a.etcd_image)
    );
    for i in 1..=DCS_MEMBERS {
        let _ = writeln!(t, "[[dcs.members]]\nconstraints = [\"node.labels.etcd.member == {i}\"]\n");
    }
}

fn haproxy(t: &mut String, a: &Answers) {
    let check = match a.topology {
        StarterTopology::Pinned => "# How HAProxy tells the primary: a PostgreSQL login check.\ncheck = \"pgsql\"\n",
        StarterTopology::Patroni => "",
    };
    let _ = write!(
        t,
        "# HAProxy on every node (global service): clients connect to write_port for\n\
         # the primary and read_port for the replicas, on any node.\n\
         [haproxy]\n\
         image = {}\n\
         {check}\
         write_port = 5000\n\
         read_port = 5001\n\
         \n\
         # HAProxy's stats page, behind the logins of the stats secret.\n\
         [haproxy.stats]\n\
         port = 8080\n\
         path = \"/stats\"\n\
         users = {{ secret = \"{STATS_SECRET}\" }}\n",
        quote(&a.haproxy_image)
    );
}
