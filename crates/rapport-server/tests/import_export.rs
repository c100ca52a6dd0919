//! `rapport import contacts` and `rapport export contacts` as an operator runs them: the real binary against a
//! fresh SQLite data directory and a fresh PostgreSQL database, with files the way spreadsheets save them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use rapport_domain::{
    BoundedText, Contact, ContactChanges, EmailAddress, FieldEntity, FieldType, Identity, IdentityKind, MergeRule,
    Patch, PhoneNumber, Slug, TagKind, TagPath, WorkspaceId,
};
use rapport_server::bootstrap::bootstrap;
use rapport_server::config::{AdminConfig, Secret, StoreConfig};
use rapport_store::{Actor, NewField, NewTag, Store};
use rapport_store_postgres::testing::TestDatabase;
use tempfile::TempDir;

/// A database with the `default` workspace, the directory for the test's files, and the store the test reads
/// back through.
struct Env {
    files: TempDir,
    store_args: Vec<String>,
    store: Arc<dyn Store>,
    workspace: WorkspaceId,
    _database: Option<TestDatabase>,
}

/// What one run of the binary printed and how it exited.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Env {
    async fn sqlite() -> Env {
        let files = tempfile::tempdir().unwrap();
        let data_dir = files.path().join("data");
        let config = StoreConfig { data_dir: data_dir.clone(), database_url: None };
        let store_args = vec!["--data-dir".to_owned(), data_dir.display().to_string()];
        Env::start(files, config, store_args, None).await
    }

    async fn postgres() -> Env {
        let database = TestDatabase::create().await.unwrap();
        let files = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            data_dir: files.path().join("unused"),
            database_url: Some(Secret::new(database.url().to_owned())),
        };
        let store_args = vec!["--database-url".to_owned(), database.url().to_owned()];
        Env::start(files, config, store_args, Some(database)).await
    }

    async fn start(
        files: TempDir,
        config: StoreConfig,
        store_args: Vec<String>,
        database: Option<TestDatabase>,
    ) -> Env {
        let store = rapport_server::open_store(&config).await.unwrap();
        bootstrap(store.as_ref(), &AdminConfig::default()).await.unwrap();
        let workspace = store.workspace_by_slug("default").await.unwrap().unwrap().id;
        Env { files, store_args, store, workspace, _database: database }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.files.path().join(name)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Runs `rapport ARGS… --data-dir/--database-url …` off the async threads.
    async fn rapport(&self, args: &[&str]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_rapport"));
        command
            .args(args)
            .args(&self.store_args)
            .env_remove("RAPPORT_DATABASE_URL")
            .env_remove("RAPPORT_DATA_DIR")
            .env("RAPPORT_LOG", "warn");
        let output: Output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    async fn import(&self, file: &Path, extra: &[&str]) -> Run {
        let mut args = vec!["import", "contacts", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.rapport(&args).await
    }

    async fn field(&self, key: &str, label: &str, field_type: FieldType, options: &[&str]) {
        let field = NewField {
            entity: FieldEntity::Contact,
            key: Slug::parse(key).unwrap(),
            label: BoundedText::parse(label, 100).unwrap(),
            field_type,
            options: options.iter().map(|option| (*option).to_owned()).collect(),
            merge_rule: MergeRule::Latest,
        };
        self.store.create_field(self.workspace, field).await.unwrap();
    }

    async fn contact(&self, email: &str) -> Option<Contact> {
        let identity = Identity::parse(IdentityKind::Email, email).unwrap();
        self.store.find_contact(self.workspace, &identity).await.unwrap()
    }

    async fn count(&self) -> u64 {
        self.store.count_contacts(self.workspace).await.unwrap()
    }

    /// Every stored contact as one line, ordered by email.
    async fn contacts(&self) -> String {
        let mut lines = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_contacts(self.workspace, rapport_store::PageRequest { after, limit: 100 })
                .await
                .unwrap();
            lines.extend(page.items.iter().map(describe));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        lines.sort();
        lines.join("\n")
    }
}

fn describe(contact: &Contact) -> String {
    let text = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let mut line = format!(
        "{} {} {} {} {} {} {}",
        text(&contact.email),
        text(&contact.phone),
        text(&contact.first_name),
        text(&contact.company_name),
        text(&contact.city),
        contact.stage,
        text(&contact.status),
    );
    if !contact.tags.is_empty() {
        line.push_str(&format!(" tags={}", contact.tags.join("|")));
    }
    for (key, value) in &contact.fields {
        line.push_str(&format!(" {key}={value}"));
    }
    line
}

/// The error lines the import printed to stderr.
fn error_lines(run: &Run) -> String {
    run.stderr.lines().filter(|line| line.starts_with("row ")).collect::<Vec<_>>().join("\n")
}

fn summary(run: &Run) -> &str {
    run.stdout.lines().last().unwrap_or_default()
}

/// Summaries end with `(N rows in 1.2 s)`; the seconds vary.
fn without_timing(text: &str) -> String {
    text.lines()
        .map(|line| match (line.find(" rows in "), line.rfind(" s)")) {
            (Some(start), Some(end)) if start < end => {
                format!("{} rows in …{}", &line[..start], &line[end..])
            }
            _ => line.to_owned(),
        })
        .map(|line| line + "\n")
        .collect()
}

fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
    assert!(!unmappable, "the fixture must be representable in GBK");
    bytes.into_owned()
}

fn with_bom(text: &str) -> Vec<u8> {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(text.as_bytes());
    bytes
}

/// Excel's plain "CSV" on Chinese Windows: GBK, Chinese headers mapped without `--map`, CRLF line ends.
async fn gbk_file_with_chinese_headers(env: &Env) {
    env.field("budget", "预算", FieldType::Number, &[]).await;
    let text = "邮箱,手机号,姓名,公司,职位,城市,预算,标签,阶段,备注\r\n\
                li.lei@example.cn,138 0013 8000,李雷,上海某某科技有限公司,销售总监,上海,\"1,200\",行业/制造业，VIP,MQL,老客户\r\n\
                HAN.Meimei@Example.cn,+86 139-0013-9000,韩梅梅,北京某某软件有限公司,采购经理,北京,800,行业/软件,sql,\r\n";
    let file = env.write("客户.csv", &gbk(text));

    let run = env.import(&file, &[]).await;

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("as GBK/GB18030 (not valid UTF-8)"), "{}", run.stderr);
    assert!(
        run.stderr.contains("预算 → fields.budget") && run.stderr.contains("Ignored columns: 备注"),
        "{}",
        run.stderr
    );
    assert!(summary(&run).contains("2 created, 0 updated, 0 failed, 0 empty skipped (2 rows in"), "{}", run.stdout);
    assert_eq!(
        env.contacts().await,
        "han.meimei@example.cn +8613900139000 韩梅梅 北京某某软件有限公司 北京 sql - tags=行业/软件 budget=800\n\
         li.lei@example.cn 13800138000 李雷 上海某某科技有限公司 上海 mql - tags=VIP|行业/制造业 budget=1200"
    );
    let li = env.contact("li.lei@example.cn").await.unwrap();
    assert_eq!(li.title.as_deref(), Some("销售总监"));
}

/// A file read in the wrong encoding fails the rows that are not valid UTF-8, naming `--encoding`, and imports
/// the rest.
async fn wrong_encoding_fails_only_the_rows_it_garbles(env: &Env) {
    let text = "email,first_name\nli@example.com,李雷\nbob@example.com,Bob\n";
    let file = env.write("gbk.csv", &gbk(text));

    let run = env.import(&file, &["--encoding", "utf-8"]).await;

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("as UTF-8 (--encoding)"), "{}", run.stderr);
    assert_eq!(
        error_lines(&run),
        "row 2: column first_name: is not valid UTF-8 text (save the file as UTF-8, or name its encoding with \
         --encoding)"
    );
    assert!(summary(&run).contains("1 created, 0 updated, 1 failed"), "{}", run.stdout);
    assert_eq!(env.contacts().await, "bob@example.com - Bob - - raw -");
}

/// "CSV UTF-8" with a byte order mark, explicit mappings, quoted commas and newlines, duplicates and every kind of
/// bad cell: good rows land, bad rows are reported with row, column and reason, and the report file has them all.
async fn utf8_file_with_bad_rows(env: &Env) {
    env.field("budget", "预算", FieldType::Number, &[]).await;
    env.field("notes", "备注", FieldType::LongText, &[]).await;
    env.field("vip", "VIP", FieldType::Boolean, &[]).await;
    env.field("met_on", "首次见面", FieldType::Date, &[]).await;
    env.field("size", "规模", FieldType::SingleSelect, &["小", "中", "大"]).await;
    env.store
        .create_tag(env.workspace, NewTag { path: TagPath::parse("高意向").unwrap(), kind: TagKind::Dynamic })
        .await
        .unwrap();
    let text = "Mail,Name,Company,Budget,Notes,VIP,Met,Size,Tags,Stage\n\
                a@example.com,Alice,\"Acme, Inc.\",5000,\"first line\nsecond line, with comma\",是,2026/3/1,中,vip;trial,\n\
                not-an-email,Bob,Bob Ltd,100,,否,,,,\n\
                c@example.com,Carol,,lots,,maybe,2026-02-30,巨大,,\n\
                ,,,,,,,,,\n\
                A@Example.com,Alice Updated,,6000,,,,,高意向|vip,customer\n\
                d@example.com,\"Dan \"\"the man\"\"\",,,,,,,,won\n\
                e@example.com,Eve,,,,,,,,\n";
    let file = env.write("leads.csv", &with_bom(text));
    let report = env.path("errors.csv");

    let run = env
        .import(
            &file,
            &[
                "--map",
                "Mail=email",
                "--map",
                "Name=first_name",
                "--map",
                "Company=company_name",
                "--map",
                "Budget=fields.budget",
                "--map",
                "Notes=fields.notes",
                "--map",
                "VIP=fields.vip",
                "--map",
                "Met=fields.met_on",
                "--map",
                "Size=fields.size",
                "--map",
                "Tags=tags",
                "--map",
                "Stage=stage",
                "--errors",
                report.to_str().unwrap(),
            ],
        )
        .await;

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("UTF-8 (byte order mark)"), "{}", run.stderr);
    assert!(summary(&run).contains("2 created, 0 updated, 4 failed, 1 empty skipped (7 rows in"), "{}", run.stdout);
    let expected_report = "\u{feff}row,line,column,value,reason\n\
        3,4,Mail,not-an-email,is not a valid email address\n\
        4,5,Budget,lots,expects a number\n\
        4,5,VIP,maybe,\"expects true or false (also yes/no, 是/否, 1/0)\"\n\
        4,5,Met,2026-02-30,expects a date as YYYY-MM-DD\n\
        4,5,Size,巨大,\"\"\"巨大\"\" is not one of the field's options\"\n\
        6,7,Tags,高意向|vip,\"\"\"高意向\"\" is a dynamic tag; only rules add contacts to it\"\n\
        7,8,Stage,won,\"is not a stage of this workspace (raw, mql, sal, sql, customer)\"\n";
    assert_eq!(std::fs::read_to_string(&report).unwrap(), expected_report);
    assert!(
        error_lines(&run).starts_with("row 3: column Mail: is not a valid email address (\"not-an-email\")\nrow 4: column Budget: expects a number (\"lots\")"),
        "{}",
        run.stderr
    );
    assert_eq!(
        env.contacts().await,
        "a@example.com - Alice Acme, Inc. - raw - tags=trial|vip budget=5000 met_on=\"2026-03-01\" \
         notes=\"first line\\nsecond line, with comma\" size=\"中\" vip=true\n\
         e@example.com - Eve - - raw -"
    );
    // Row 6 (`A@Example.com`) failed as a whole, so the earlier row's values stand.
    let alice = env.contact("a@example.com").await.unwrap();
    assert_eq!(alice.first_name.as_deref(), Some("Alice"));
}

/// The same email twice in one file, in different case: one contact, created then updated by the later row.
async fn duplicate_rows_update_one_contact(env: &Env) {
    let text = "email,first_name,city,tags\n\
                wang@example.com,王,上海,a\n\
                WANG@example.com ,王伟,,b\n";
    let file = env.write("dupes.csv", text.as_bytes());

    let run = env.import(&file, &[]).await;

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(summary(&run).contains("1 created, 1 updated, 0 failed"), "{}", run.stdout);
    assert_eq!(
        env.contacts().await,
        "wang@example.com - 王伟 - 上海 raw - tags=a|b",
        "an empty cell leaves the stored value alone"
    );
}

/// A row whose email belongs to one contact and phone to another cannot be merged: the store refuses the batch,
/// and the import retries it in parts so that only that row is reported.
async fn identity_conflict_fails_only_its_row(env: &Env) {
    let existing = |email: &str, phone: &str| ContactChanges {
        email: Patch::Set(EmailAddress::parse(email).unwrap()),
        phone: Patch::Set(PhoneNumber::parse(phone).unwrap()),
        ..ContactChanges::default()
    };
    env.store
        .upsert_contacts(
            env.workspace,
            vec![existing("x@example.com", "13800000001"), existing("y@example.com", "13800000002")],
            Actor::System,
        )
        .await
        .unwrap();
    let mut text = String::from("email,phone,first_name\n");
    for index in 0..20 {
        text.push_str(&format!("new{index}@example.com,,New {index}\n"));
    }
    text.push_str("x@example.com,13800000002,Clash\n");
    text.push_str("y@example.com,13800000002,Yvonne\n");
    let file = env.write("conflict.csv", text.as_bytes());

    let run = env.import(&file, &[]).await;

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(summary(&run).contains("20 created, 1 updated, 1 failed"), "{}", run.stdout);
    let errors = error_lines(&run);
    assert!(
        errors.starts_with("row 22: ") && errors.contains("belongs to another contact") && !errors.contains('\n'),
        "{errors}"
    );
    assert_eq!(env.count().await, 22);
    let x = env.contact("x@example.com").await.unwrap();
    assert_eq!(x.first_name, None, "the clashing row wrote nothing");
    let y = env.contact("y@example.com").await.unwrap();
    assert_eq!(y.first_name.as_deref(), Some("Yvonne"));
}

/// `--dry-run` shows the first rows as they would land, checks every row, and writes nothing.
async fn dry_run_writes_nothing(env: &Env) {
    env.field("budget", "预算", FieldType::Number, &[]).await;
    let text = "邮箱,姓名,预算,标签\n\
                zhang@example.com,张三,\"2,500\",华东 | 重点\n\
                bad,李四,x,\n";
    let file = env.write("preview.csv", text.as_bytes());

    let run = env.import(&file, &["--dry-run"]).await;

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        without_timing(&run.stdout),
        "row 2:\n\
         \x20 email          zhang@example.com\n\
         \x20 first_name     张三\n\
         \x20 tags           华东, 重点\n\
         \x20 fields.budget  2500\n\
         row 3: would be skipped\n\
         \x20 column 邮箱: is not a valid email address (\"bad\")\n\
         \x20 column 预算: expects a number (\"x\")\n\
         Dry run of preview.csv: 1 valid, 1 failed, 0 empty skipped (2 rows in … s); nothing was written\n"
            .replace("preview.csv", file.to_str().unwrap())
    );
    assert_eq!(env.count().await, 0);
}

/// Problems that stop the import before any row is read exit with status 2 and write nothing.
async fn fatal_problems_exit_with_2(env: &Env) {
    let file = env.write("plain.csv", "邮箱,预算\nok@example.com,1\n".as_bytes());
    let fields_header = env.write("fields.csv", "email,fields.nope\nok@example.com,1\n".as_bytes());
    let no_match = env.write("nothing.csv", "甲,乙\n1,2\n".as_bytes());
    let empty = env.write("empty.csv", b"");
    let missing = env.path("missing.csv");
    let cases: [(&Path, &[&str], &str); 7] = [
        (&file, &["--map", "Email=email"], "the file has no column \"Email\""),
        (&file, &["--map", "邮箱=mail"], "unknown field `mail`"),
        (&file, &["--map", "预算=fields.budget"], "`fields.budget` is not a custom field"),
        (&fields_header, &[], "`fields.nope` is not a custom field"),
        (&no_match, &[], "no column maps to a contact field"),
        (&empty, &[], "is empty"),
        (&missing, &[], "opening"),
    ];
    for (path, args, message) in cases {
        let run = env.import(path, args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
    }
    let run = env.import(&file, &["--workspace", "nope"]).await;
    assert_eq!((run.code, run.stderr.contains("no workspace \"nope\"")), (2, true), "{}", run.stderr);
    assert_eq!(env.count().await, 0);
}

/// Import, export, and import the export again: the export has every row with its fields and tags, opens in
/// Excel (byte order mark), and re-importing it changes nothing but `updated_at`.
async fn export_round_trip(env: &Env) {
    env.field("budget", "预算", FieldType::Number, &[]).await;
    env.field("products", "产品", FieldType::MultiSelect, &["CRM", "CDP", "邮件"]).await;
    let text = "email,phone,first_name,company_name,stage,status,tags,fields.budget,fields.products\n\
                liu@example.com,13800000011,刘,\"刘氏\"\"精密\"\", 有限公司\",sal,contacted,\"行业/制造业,VIP\",1500.5,CRM|邮件\n\
                chen@example.com,,陈,,,,,,\n";
    let file = env.write("round.csv", text.as_bytes());
    let run = env.import(&file, &[]).await;
    assert!(summary(&run).contains("2 created"), "{}{}", run.stdout, run.stderr);

    let export = env.rapport(&["export", "contacts"]).await;

    assert_eq!(export.code, 0, "{}", export.stderr);
    assert!(export.stdout.starts_with('\u{feff}'), "a byte order mark for Excel");
    let mut reader = csv::Reader::from_reader(export.stdout.trim_start_matches('\u{feff}').as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        header.join(","),
        "id,email,phone,user_id,first_name,last_name,title,company_name,city,province,country,source,stage,\
         status,owner_id,company_id,tags,created_at,updated_at,fields.budget,fields.products"
    );
    let mut rows: Vec<String> = reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            let pick = |name: &str| {
                let index = header.iter().position(|column| column == name).unwrap();
                record[index].to_owned()
            };
            assert!(pick("id").parse::<i64>().is_ok() && pick("created_at").ends_with('Z'));
            [
                "email",
                "phone",
                "first_name",
                "company_name",
                "stage",
                "status",
                "tags",
                "fields.budget",
                "fields.products",
            ]
            .iter()
            .map(|name| pick(name))
            .collect::<Vec<_>>()
            .join(" / ")
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows.join("\n"),
        "chen@example.com /  / 陈 /  / raw /  /  /  / \n\
         liu@example.com / 13800000011 / 刘 / 刘氏\"精密\", 有限公司 / sal / contacted / VIP,行业/制造业 / 1500.5 / CRM,邮件"
    );

    let before = env.contacts().await;
    let exported = env.write("exported.csv", export.stdout.as_bytes());
    let again = env.import(&exported, &[]).await;
    assert!(summary(&again).contains("0 created, 2 updated, 0 failed"), "{}{}", again.stdout, again.stderr);
    assert!(
        again.stderr.contains("Ignored columns: id, owner_id, company_id, created_at, updated_at"),
        "{}",
        again.stderr
    );
    assert_eq!(env.contacts().await, before);
}

/// One test per backend for each case: `sqlite::case` and `postgres::case`.
macro_rules! import_export_tests {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(&super::Env::sqlite().await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(&super::Env::postgres().await).await;
            })*
        }
    };
}

import_export_tests!(
    gbk_file_with_chinese_headers,
    wrong_encoding_fails_only_the_rows_it_garbles,
    utf8_file_with_bad_rows,
    duplicate_rows_update_one_contact,
    identity_conflict_fails_only_its_row,
    dry_run_writes_nothing,
    fatal_problems_exit_with_2,
    export_round_trip,
);
