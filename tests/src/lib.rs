//! Helpers for the cross-process tests: a development PKI, a real hub on
//! port 0 over mutual TLS with its own database, agents configured against
//! it, and raw gRPC clients that speak to the hub exactly as an agent does.
//!
//! In the manner of zero2prod's `tests/api/helpers.rs`: every test builds
//! its own federation in its own temporary folder, so tests run in parallel.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kith_agent::config::AgentConfig;
use kith_core::AuthorityCode;
use kith_core::pki::{self, CertificateAuthority, PkiLayout, Validity};
use kith_core::tls::TlsFiles;
use kith_hub::config::HubConfig;
use kith_hub::directory::Member;
use kith_hub::server::RunningHub;
use kith_proto::v1 as pb;
use tempfile::TempDir;
use tonic::transport::{Channel, Endpoint};

pub use kith_proto::v1;

pub mod fault_proxy;
pub mod process;
pub mod tally;

/// Manchester City Council.
pub const COUNCIL_A: &str = "E08000003";
/// Salford City Council.
pub const COUNCIL_B: &str = "E08000006";
/// Manchester University NHS Foundation Trust.
pub const TRUST_C: &str = "R0A";
/// Greater Manchester Police.
pub const POLICE_D: &str = "GMP";
/// The federation's oversight body (authority kind `federation`), whose
/// `federation_auditor` reads every audit entry.
pub const OVERSIGHT: &str = "KITH-OVERSIGHT";
/// An authority with a valid certificate that is not in the directory.
pub const OUTSIDER: &str = "X99";

/// The federation members every test hub knows.
pub fn members() -> Vec<Member> {
    let m = |code: &str, name: &str, kind: &str| Member {
        code: code.into(),
        name: name.into(),
        kind: kind.into(),
        jurisdiction: "england".into(),
    };
    vec![
        m(COUNCIL_A, "Manchester City Council", "council"),
        m(COUNCIL_B, "Salford City Council", "council"),
        m(
            TRUST_C,
            "Manchester University NHS Foundation Trust",
            "nhs_trust",
        ),
        m(POLICE_D, "Greater Manchester Police", "police"),
        m(OVERSIGHT, "Kith Federation Oversight Board", "federation"),
    ]
}

/// Which store a test hub uses: SQLite (`hub.db` in the test folder) by
/// default, or PostgreSQL when `KITH_TEST_DATABASE=postgres`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestStore {
    Sqlite,
    Postgres,
}

impl TestStore {
    /// The store chosen by `KITH_TEST_DATABASE` (`postgres`, or `sqlite`,
    /// the default).
    pub fn from_env() -> Self {
        match std::env::var("KITH_TEST_DATABASE").as_deref() {
            Ok("postgres") | Ok("postgresql") => Self::Postgres,
            Ok("") | Ok("sqlite") | Err(_) => Self::Sqlite,
            Ok(other) => panic!("KITH_TEST_DATABASE={other:?}: use sqlite or postgres"),
        }
    }
}

/// The PostgreSQL server the tests use: loopback only, trust auth.
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of its own on the local PostgreSQL, `kith_test_<random hex>`,
/// dropped (with any connections still open to it) when this drops.
pub struct PostgresTestDb {
    name: String,
}

impl PostgresTestDb {
    /// Creates the database. Blocking: runs on a thread of its own, so it
    /// works inside and outside a tokio runtime.
    pub fn create() -> Self {
        let name = format!("kith_test_{}", hex_id());
        // A database name cannot be a bound parameter; this one is ours,
        // [a-z0-9_] only.
        let sql = format!("CREATE DATABASE {name}");
        admin_blocking(sql).unwrap_or_else(|e| {
            panic!(
                "KITH_TEST_DATABASE=postgres needs PostgreSQL at 127.0.0.1:5432 ({e}); start it \
                 with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
            )
        });
        Self { name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for PostgresTestDb {
    fn drop(&mut self) {
        // Best effort: a failed drop leaves a database behind, nothing worse.
        let _ = admin_blocking(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

fn hex_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Runs one statement on the maintenance database, on a thread with its own
/// runtime (a runtime cannot block inside another).
fn admin_blocking(sql: String) -> Result<(), String> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(POSTGRES_ADMIN_URL)
                .await
                .map_err(|e| e.to_string())?;
            let result = sqlx::query(&sql).execute(&mut conn).await;
            let _ = conn.close().await;
            result.map(|_| ()).map_err(|e| e.to_string())
        })
    })
    .join()
    .map_err(|_| "the database thread panicked".to_string())?
}

/// A temporary folder holding a PKI, policies and databases.
pub struct TestDir {
    pub dir: TempDir,
    pub pki: PkiLayout,
    /// The hub's PostgreSQL database, when the tests run on PostgreSQL.
    pub postgres: Option<PostgresTestDb>,
}

impl TestDir {
    /// Makes a folder with a fresh PKI for every member and the outsider,
    /// and the default policy set.
    pub fn new() -> Self {
        Self::with_store(TestStore::from_env())
    }

    /// A folder whose hubs use a fresh PostgreSQL database, whatever
    /// `KITH_TEST_DATABASE` says (for tests of several hubs on one database).
    pub fn on_postgres() -> Self {
        Self::with_store(TestStore::Postgres)
    }

    /// A folder whose hubs use `store`, whatever `KITH_TEST_DATABASE` says
    /// (also what `kith-bench` builds its federation with).
    pub fn with_store(store: TestStore) -> Self {
        kith_core::tls::install_crypto_provider();
        let dir = tempfile::tempdir().expect("temp dir");
        let codes: Vec<AuthorityCode> =
            [COUNCIL_A, COUNCIL_B, TRUST_C, POLICE_D, OVERSIGHT, OUTSIDER]
                .iter()
                .map(|c| AuthorityCode::new(*c).unwrap())
                .collect();
        let pki = pki::init(
            &dir.path().join("pki"),
            &["localhost".into(), "127.0.0.1".into()],
            &codes,
        )
        .expect("dev PKI");
        kith_hub::default_policies::write_to(&dir.path().join("policies"), true).expect("policies");
        kith_hub::transparency::write_key(
            &dir.path().join("pki"),
            kith_hub::transparency::DEV_ORIGIN,
        )
        .expect("log key");
        let postgres = match store {
            TestStore::Sqlite => None,
            TestStore::Postgres => Some(PostgresTestDb::create()),
        };
        Self { dir, pki, postgres }
    }

    /// Which store this folder's hubs use.
    pub fn store_kind(&self) -> TestStore {
        if self.postgres.is_some() {
            TestStore::Postgres
        } else {
            TestStore::Sqlite
        }
    }

    /// The hubs' `database_url`: `hub.db` in this folder, or this folder's
    /// own PostgreSQL database.
    pub fn database_url(&self) -> String {
        match &self.postgres {
            Some(db) => db.url(),
            None => format!("sqlite://{}", self.path().join("hub.db").display()),
        }
    }

    /// A pool on this folder's PostgreSQL database, for tests that reach
    /// past the hub (to tamper with rows, or to look for data). Panics on
    /// SQLite.
    pub async fn postgres_pool(&self) -> sqlx::PgPool {
        let db = self
            .postgres
            .as_ref()
            .expect("this test folder uses SQLite, not PostgreSQL");
        sqlx::PgPool::connect(&db.url())
            .await
            .expect("test database")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The audit log's verifier key (C2SP vkey), as auditors are given it.
    pub fn log_vkey(&self) -> PathBuf {
        self.path().join("pki").join("audit-log.vkey")
    }

    /// Client TLS files for `code`.
    pub fn agent_tls(&self, code: &str) -> TlsFiles {
        let code = AuthorityCode::new(code).unwrap();
        TlsFiles {
            ca: self.pki.ca_cert(),
            cert: self.pki.authority_cert(&code),
            key: self.pki.authority_key(&code),
        }
    }

    /// A hub config on 127.0.0.1:`port` (0 for any) with this folder's
    /// database (see [`TestDir::database_url`]).
    pub fn hub_config(&self, port: u16) -> HubConfig {
        HubConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            database_url: self.database_url(),
            jurisdiction: "england".into(),
            policy_dir: self.path().join("policies"),
            policy_reload_interval_ms: 100,
            detail_timeout_ms: 2000,
            tls: TlsFiles {
                ca: self.pki.ca_cert(),
                cert: self.pki.hub_cert(),
                key: self.pki.hub_key(),
            },
            sharing: Default::default(),
            limits: Default::default(),
            audit: kith_hub::config::AuditConfig {
                signing_key: self.path().join("pki").join("audit-log.skey"),
                checkpoint_interval_ms: 50,
            },
            authorities: members(),
        }
    }

    /// Starts a hub on any free port.
    pub async fn start_hub(&self) -> RunningHub {
        kith_hub::server::start(&self.hub_config(0))
            .await
            .expect("hub starts")
    }

    /// An agent config for `code` against a hub at `addr`, with its own
    /// data and drop folders, publishing quickly and retrying fast.
    pub fn agent_config(&self, code: &str, addr: SocketAddr) -> AgentConfig {
        let base = self.path().join("agents").join(code);
        let mut config = AgentConfig::new(
            code,
            vec![format!("https://{addr}")],
            self.agent_tls(code),
            base.join("data"),
            base.join("drop"),
        );
        config.ingest.poll_interval_ms = 50;
        config.publish.backoff_initial_ms = 50;
        config.publish.backoff_max_ms = 500;
        config.publish.request_timeout_ms = 5_000;
        config.link.heartbeat_interval_seconds = 1;
        std::fs::create_dir_all(&config.drop_dir).unwrap();
        std::fs::create_dir_all(&config.data_dir).unwrap();
        config
    }

    /// Issues a certificate for `code` from a different, unknown CA.
    pub fn foreign_tls(&self, code: &str) -> TlsFiles {
        let ca = CertificateAuthority::generate("Some other CA").unwrap();
        self.write_leaf(&ca, code, Validity::default(), "foreign")
    }

    /// Issues an expired certificate for `code` from the federation CA.
    pub fn expired_tls(&self, code: &str) -> TlsFiles {
        let ca = CertificateAuthority::from_pem(
            &std::fs::read_to_string(self.pki.ca_cert()).unwrap(),
            &std::fs::read_to_string(self.pki.ca_key()).unwrap(),
        )
        .unwrap();
        self.write_leaf(
            &ca,
            code,
            Validity {
                from_days_ago: 30,
                until_days_from_now: -1,
            },
            "expired",
        )
    }

    fn write_leaf(
        &self,
        ca: &CertificateAuthority,
        code: &str,
        validity: Validity,
        tag: &str,
    ) -> TlsFiles {
        let leaf = ca
            .issue_authority(&AuthorityCode::new(code).unwrap(), validity)
            .unwrap();
        let dir = self.path().join(tag);
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join(format!("{code}.crt.pem"));
        let key = dir.join(format!("{code}.key.pem"));
        std::fs::write(&cert, leaf.cert_pem).unwrap();
        std::fs::write(&key, leaf.key_pem).unwrap();
        TlsFiles {
            ca: self.pki.ca_cert(),
            cert,
            key,
        }
    }
}

/// Direct access to a test hub's database, past the hub, on whichever store
/// the tests run: to tamper with rows, break writes, or look for data.
pub enum HubDb {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl HubDb {
    /// Connects to the database `t`'s hubs use.
    pub async fn connect(t: &TestDir) -> Self {
        match t.store_kind() {
            TestStore::Sqlite => Self::Sqlite(
                sqlx::SqlitePool::connect(&t.database_url())
                    .await
                    .expect("hub.db"),
            ),
            TestStore::Postgres => Self::Postgres(t.postgres_pool().await),
        }
    }

    /// Runs a statement with no parameters, in the dialect of the store.
    pub async fn execute(&self, sqlite: &str, postgres: &str) {
        match self {
            Self::Sqlite(pool) => sqlx::raw_sql(sqlite).execute(pool).await.map(|_| ()),
            Self::Postgres(pool) => sqlx::raw_sql(postgres).execute(pool).await.map(|_| ()),
        }
        .expect("statement runs");
    }

    /// The stored bytes of audit entry `idx`.
    pub async fn audit_entry(&self, idx: i64) -> Vec<u8> {
        match self {
            Self::Sqlite(pool) => {
                sqlx::query_scalar("SELECT entry FROM audit_log WHERE idx = ?")
                    .bind(idx)
                    .fetch_one(pool)
                    .await
            }
            Self::Postgres(pool) => {
                sqlx::query_scalar("SELECT entry FROM audit_log WHERE idx = $1")
                    .bind(idx)
                    .fetch_one(pool)
                    .await
            }
        }
        .expect("an audit entry")
    }

    /// Overwrites audit entry `idx`'s bytes, and its leaf hash if given (the
    /// append-only triggers must be gone first).
    pub async fn rewrite_audit_entry(&self, idx: i64, entry: &[u8], leaf_hash: Option<[u8; 32]>) {
        let leaf = leaf_hash.map(|h| h.to_vec());
        match self {
            Self::Sqlite(pool) => sqlx::query(
                "UPDATE audit_log SET entry = ?, leaf_hash = COALESCE(?, leaf_hash) WHERE idx = ?",
            )
            .bind(entry)
            .bind(leaf)
            .bind(idx)
            .execute(pool)
            .await
            .map(|_| ()),
            Self::Postgres(pool) => sqlx::query(
                "UPDATE audit_log SET entry = $1, leaf_hash = COALESCE($2, leaf_hash) WHERE idx = $3",
            )
            .bind(entry)
            .bind(leaf)
            .bind(idx)
            .execute(pool)
            .await
            .map(|_| ()),
        }
        .expect("rewrite");
    }

    pub async fn close(self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

impl Default for TestDir {
    fn default() -> Self {
        Self::new()
    }
}

/// A channel to the hub at `addr` presenting `tls` (mutual TLS).
pub async fn channel(addr: SocketAddr, tls: &TlsFiles) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls.client_config("localhost").expect("tls files"))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// A channel that trusts the hub but presents no client certificate.
pub async fn channel_without_certificate(
    addr: SocketAddr,
    ca: &Path,
) -> Result<Channel, tonic::transport::Error> {
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            std::fs::read(ca).unwrap(),
        ))
        .domain_name("localhost");
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect()
        .await
}

pub fn records_client(ch: Channel) -> pb::record_service_client::RecordServiceClient<Channel> {
    pb::record_service_client::RecordServiceClient::new(ch)
}

pub fn query_client(ch: Channel) -> pb::query_service_client::QueryServiceClient<Channel> {
    pb::query_service_client::QueryServiceClient::new(ch)
}

/// A valid record of `custodian` about NHS number `nhs`, as JSON.
pub fn record_json(
    custodian: &str,
    record_id: &str,
    version: u64,
    nhs: &str,
    relationship_type: &str,
    purposes: &[&str],
) -> String {
    serde_json::json!({
        "record_id": record_id,
        "version": version,
        "custodian": custodian,
        "subject": {"nhs_number": nhs, "demographics": {"given_name": "Amelia", "family_name": "O'Brien",
            "date_of_birth": "2015-04-12", "postcode": "M14 5RT"}},
        "relationship_type": relationship_type,
        "sensitivity": "normal",
        "service": "Children's Services",
        "period": {"start": "2025-02-01"},
        "key_worker": {"name": "Jo Smith", "role": "Social worker", "phone": "0161 234 5000"},
        "out_of_hours": {"name": "Emergency Duty Team", "phone": "0161 234 5999"},
        "lawful_basis": {"article6": "public_task", "article9": "substantial_public_interest", "statute": "Children Act 1989 s47"},
        "permitted_purposes": purposes,
        "residency": "england",
        "provenance": {"source_system": "mosaic"}
    })
    .to_string()
}

/// The same record as a wire message.
pub fn record_wire(
    custodian: &str,
    record_id: &str,
    version: u64,
    nhs: &str,
    relationship_type: &str,
    purposes: &[&str],
) -> pb::RelationshipRecord {
    let record: kith_core::Record = serde_json::from_str(&record_json(
        custodian,
        record_id,
        version,
        nhs,
        relationship_type,
        purposes,
    ))
    .unwrap();
    kith_core::wire::record_to_wire(&record)
}

/// A query request from a user with `role` for `purpose`.
pub fn query_request(nhs: &str, purpose: pb::Purpose, role: &str) -> pb::QueryRequest {
    pb::QueryRequest {
        acting_user: Some(pb::ActingUser {
            user_id: "u-1001".into(),
            display_name: "Sam Patel".into(),
            role: role.into(),
            team: "Children's Services".into(),
        }),
        purpose: purpose as i32,
        subject: Some(pb::Subject {
            nhs_number: nhs.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Reads the hub's audit entries as JSON values, oldest first.
pub async fn audit_entries(hub: &RunningHub) -> Vec<serde_json::Value> {
    let entries = hub.hub().store().audit_entries(0, 100_000).await.unwrap();
    entries
        .into_iter()
        .map(|e| serde_json::from_slice(&e.entry).unwrap())
        .collect()
}

/// Waits until `f` is true, polling, up to `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Path of a file in the agent's drop folder.
pub fn drop_path(config: &AgentConfig, name: &str) -> PathBuf {
    config.drop_dir.join(name)
}

/// The `n`th valid NHS number in the test range 999 000 0000 – 999 999 9999
/// (distinct for distinct `n`).
pub fn test_nhs_number(n: u32) -> String {
    kith_demo::synthetic::test_nhs_number(u64::from(n)).as_digits()
}

pub fn audit_client(ch: Channel) -> pb::audit_service_client::AuditServiceClient<Channel> {
    pb::audit_service_client::AuditServiceClient::new(ch)
}

/// An active directive of `custodian` about its record `record_id`, in
/// force from 2025-01-01, covering every purpose and recipient.
pub fn directive_wire(
    custodian: &str,
    directive_id: &str,
    version: u64,
    record_id: &str,
    kind: pb::DirectiveKind,
    status: pb::DirectiveStatus,
) -> pb::SharingDirective {
    pb::SharingDirective {
        directive_id: directive_id.into(),
        version,
        custodian: custodian.into(),
        record_id: record_id.into(),
        kind: kind as i32,
        status: status as i32,
        period: Some(pb::Period {
            start: "2025-01-01".into(),
            end: String::new(),
        }),
        grantor: "the person".into(),
        purposes: vec![],
        recipient_kinds: vec![],
        recipient_authorities: vec![],
        recorded_at: "2026-01-01T09:00:00Z".into(),
        note: String::new(),
    }
}

/// An acting user with `role`.
pub fn acting_user(role: &str) -> pb::ActingUser {
    pb::ActingUser {
        user_id: format!("{role}-1"),
        display_name: "Alex Auditor".into(),
        role: role.into(),
        team: "Information Governance".into(),
    }
}

/// An agent link opened by hand, to watch what the hub sends an authority.
pub struct LinkProbe {
    outbound: tokio::sync::mpsc::Sender<pb::AgentMessage>,
    inbound: tonic::Streaming<pb::HubMessage>,
}

impl LinkProbe {
    /// Opens the link as the authority `tls` names and waits for the welcome.
    pub async fn open(addr: SocketAddr, tls: &TlsFiles) -> Self {
        let mut client = pb::agent_link_service_client::AgentLinkServiceClient::new(
            channel(addr, tls).await.expect("channel"),
        );
        let (outbound, rx) = tokio::sync::mpsc::channel(16);
        outbound
            .send(pb::AgentMessage {
                message: Some(pb::agent_message::Message::Hello(pb::AgentHello {
                    agent_version: "probe".into(),
                })),
            })
            .await
            .unwrap();
        let mut inbound = client
            .open_link(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("open link")
            .into_inner();
        match inbound.message().await.expect("welcome") {
            Some(pb::HubMessage {
                message: Some(pb::hub_message::Message::Welcome(_)),
            }) => {}
            other => panic!("expected a welcome, got {other:?}"),
        }
        Self { outbound, inbound }
    }

    /// The next notification the hub sends within `within`, if any.
    pub async fn next_notification(&mut self, within: Duration) -> Option<pb::Notification> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let message = tokio::time::timeout_at(deadline, self.inbound.message())
                .await
                .ok()?
                .expect("link stream")?;
            if let Some(pb::hub_message::Message::Notification(n)) = message.message {
                return Some(n);
            }
        }
    }

    /// Acknowledges a notification.
    pub async fn ack(&self, notification_id: &str) {
        self.outbound
            .send(pb::AgentMessage {
                message: Some(pb::agent_message::Message::NotificationAck(
                    pb::NotificationAck {
                        notification_id: notification_id.into(),
                    },
                )),
            })
            .await
            .unwrap();
    }
}

/// Publishes `records` as the authority `tls` names and asserts each was
/// accepted.
pub async fn publish_accepted(
    addr: SocketAddr,
    tls: &TlsFiles,
    records: Vec<pb::RelationshipRecord>,
) -> Vec<pb::PublishResult> {
    let mut c = records_client(channel(addr, tls).await.expect("channel"));
    let results = c
        .publish_records(pb::PublishRecordsRequest { records })
        .await
        .expect("publish")
        .into_inner()
        .results;
    for r in &results {
        assert_eq!(
            r.outcome,
            pb::PublishOutcome::Accepted as i32,
            "{}: {:?}",
            r.record_id,
            r.errors
        );
    }
    results
}

/// Sends `request` as the authority `tls` names.
pub async fn ask_as(
    addr: SocketAddr,
    tls: &TlsFiles,
    request: pb::QueryRequest,
) -> Result<pb::QueryResponse, tonic::Status> {
    let mut q = query_client(channel(addr, tls).await.expect("channel"));
    q.query(request).await.map(|r| r.into_inner())
}

/// Writes a file into an agent's drop folder as a source system should: to
/// a temporary name, then renamed into place.
pub fn drop_file(config: &AgentConfig, name: &str, contents: &str) {
    let temp = config.drop_dir.join(format!(".{name}.partial"));
    std::fs::write(&temp, contents).unwrap();
    std::fs::rename(&temp, config.drop_dir.join(name)).unwrap();
}

/// A request message sent as the bytes given, exactly: for messages no
/// well-behaved client would build (amplified, malformed, oversized),
/// without the client decoding them first.
#[derive(Debug, Default, Clone)]
pub struct RawMessage(pub Vec<u8>);

impl prost::Message for RawMessage {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// Sends `bytes` as the request of the unary method at `path` (for example
/// `/kith.v1.RecordService/PublishRecords`) and decodes the answer as `R`.
pub async fn unary_raw<R>(
    channel: Channel,
    path: &'static str,
    bytes: Vec<u8>,
) -> Result<R, tonic::Status>
where
    R: prost::Message + Default + Send + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<RawMessage, R>::default();
    grpc.unary(
        tonic::Request::new(RawMessage(bytes)),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        codec,
    )
    .await
    .map(tonic::Response::into_inner)
}

/// The encoding of a `PublishRecordsRequest` holding `n` empty records:
/// 2 bytes each on the wire, over a kilobyte each once decoded.
pub fn empty_records_request(n: usize) -> Vec<u8> {
    [0x0a, 0x00].repeat(n)
}

/// A line of `/proc/self/status` (for example `VmHWM`), in kB.
pub fn proc_status_kb(key: &str) -> Option<u64> {
    proc_status_kb_of("self", key)
}

/// A line of `/proc/PID/status` (for example `VmRSS`), in kB.
pub fn proc_status_kb_of(pid: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
