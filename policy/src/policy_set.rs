//! Loading a policy set from its folder: schema, vocabulary, relationship
//! types, agreements and every `*.cedar` file (outside `tests/`), strictly
//! validated, whole or nothing. See `docs/policies.md` for the layout.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use cedar_policy::{
    ActionConstraint, Authorizer, Effect, PolicyId, Schema, SchemaFragment, ValidationMode,
    Validator,
};
use miette::Diagnostic;

use crate::agreement::{Agreement, AgreementIndex, parse_agreements};
use crate::batch::{Base, BatchCache, Item, copy_id};
use crate::compile::{Compiled, GuardCache, Units, compile, may_apply};
use crate::entities::{
    AUDIT_ACTIONS, Names, REVIEW_ACTION, SUBSCRIBE_ACTION, hold_entities, query_context,
    request_entities,
};
use crate::error::{PolicyError, Problem};
use crate::input::{RecordFacts, Requester};
use crate::vocabulary::Vocabulary;

pub(crate) const SCHEMA_FILE: &str = "kith.cedarschema";
pub(crate) const VOCABULARY_FILE: &str = "vocabulary.json";
pub(crate) const AGREEMENTS_FILE: &str = "agreements.json";
pub(crate) const TYPES_FILE: &str = "relationship_types.json";
/// Category given to a relationship type that relationship_types.json does not list.
pub(crate) const UNCATEGORISED: &str = "uncategorised";

/// What the engine keeps about each policy, for explanations.
#[derive(Debug, Clone)]
pub(crate) struct PolicyMeta {
    pub reason: String,
    pub advice: Option<String>,
    /// `@title`: how a general permit is named to the case worker.
    pub title: Option<String>,
    /// Index into `PolicySet::agreements`.
    pub agreement: Option<usize>,
}

/// A loaded, validated policy set. Cheap to share behind an `Arc`; swap the
/// whole value to reload.
#[derive(Debug, Clone)]
pub struct PolicySet {
    pub(crate) names: Names,
    pub(crate) authorizer: Authorizer,
    /// Per disclosure action: whether a general permit (one without
    /// `@agreement`) may apply, so the general policies are evaluated.
    pub(crate) general_applies: [bool; 3],
    /// The evaluation units (see `compile.rs`): agreement-independent
    /// general forbids, evaluated once per decision ...
    pub(crate) record_units: Units,
    /// ... the other general policies (general permits and the forbids that
    /// read `context.agreement`), for the evaluation without an agreement ...
    pub(crate) general_units: Units,
    /// ... and, per agreement, those forbids plus its own policies.
    pub(crate) agreement_units: Vec<Units>,
    /// Per agreement and disclosure action: whether one of its own permits
    /// may apply, so it is evaluated for that action.
    pub(crate) agreement_applies: Vec<[bool; 3]>,
    /// The batch form (see `batch.rs`) of the record forbids and general
    /// policies; `None` if one of them has none (every decision is then
    /// made unit by unit).
    pub(crate) batch_base: Option<Base>,
    /// The general forbids that read `context.agreement`, and each
    /// agreement's own policies, in evaluation form, to specialise ...
    pub(crate) bound_compiled: Vec<Compiled>,
    pub(crate) own_compiled: Vec<Vec<Compiled>>,
    /// ... per agreement, on first use (`None`: not specialisable).
    pub(crate) agreement_items: Vec<OnceLock<Option<Vec<Item>>>>,
    /// Batches by candidate list.
    pub(crate) batches: BatchCache,
    /// Which disclosure actions each policy's scope applies to (bit k for
    /// `DISCLOSURE_ACTIONS[k]`).
    pub(crate) masks: HashMap<PolicyId, u8>,
    /// General policies whose scope may apply to `hold_detail`.
    pub(crate) hold: cedar_policy::PolicySet,
    /// General policies whose scope may apply to an audit action.
    pub(crate) audit: cedar_policy::PolicySet,
    /// The schema declares both audit actions (a set written before they
    /// existed loads, and gives no one audit access).
    pub(crate) audit_defined: bool,
    /// The schema declares `review_break_glass` (otherwise no one may
    /// review a break-glass access: fails closed).
    pub(crate) review_defined: bool,
    /// The schema declares `subscribe` (otherwise no one may subscribe:
    /// fails closed).
    pub(crate) subscribe_defined: bool,
    pub(crate) agreements: Vec<Agreement>,
    pub(crate) index: AgreementIndex,
    pub(crate) categories: HashMap<String, String>,
    pub(crate) meta: HashMap<String, PolicyMeta>,
    pub(crate) vocabulary: Vocabulary,
    fingerprint: String,
    files: Vec<PathBuf>,
}

fn read(path: &Path) -> Result<String, PolicyError> {
    fs::read_to_string(path).map_err(|source| PolicyError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every `*.cedar` file under `dir`, skipping `tests/` and hidden folders, sorted.
fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = fs::read_dir(&d).map_err(|source| PolicyError::Read {
            path: d.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| PolicyError::Read {
                path: d.clone(),
                source,
            })?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !(name.starts_with('.') || (d == dir && name == "tests")) {
                    stack.push(path);
                }
            } else if name.ends_with(".cedar") && !name.starts_with('.') {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// First labelled line of a diagnostic, plus its message and help.
fn describe(d: &dyn Diagnostic, text: &str) -> (Option<usize>, String) {
    let line = d
        .labels()
        .and_then(|mut l| l.next())
        .map(|l| line_of(text, l.offset()));
    let mut msg = d.to_string();
    if let Some(help) = d.help() {
        msg.push_str(&format!(" (help: {help})"));
    }
    (line, msg)
}

impl PolicySet {
    /// Loads the policy set in `dir`: `kith.cedarschema`, `vocabulary.json`,
    /// `agreements.json`, `relationship_types.json` and every `*.cedar` file
    /// below `dir` (except in `tests/`). Policies are validated strictly
    /// against the schema. Every problem is reported, naming its file.
    pub fn load(dir: &Path) -> Result<PolicySet, PolicyError> {
        let names = Names::new();
        let mut problems = Vec::new();
        let schema_path = dir.join(SCHEMA_FILE);
        let vocab_path = dir.join(VOCABULARY_FILE);
        let agreements_path = dir.join(AGREEMENTS_FILE);
        let types_path = dir.join(TYPES_FILE);
        let schema_text = read(&schema_path)?;
        let vocab_text = read(&vocab_path)?;
        let agreements_text = read(&agreements_path)?;
        let types_text = read(&types_path)?;
        let cedar_files = policy_files(dir)?;
        let mut cedar_texts = Vec::with_capacity(cedar_files.len());
        for f in &cedar_files {
            cedar_texts.push(read(f)?);
        }
        if cedar_files.is_empty() {
            problems.push(Problem::new(dir, "no policy files (*.cedar) found"));
        }

        // Fingerprint: SHA-256 over (relative path, length, content) of every file, in order.
        let mut all: Vec<(PathBuf, &str)> = vec![
            (schema_path.clone(), &schema_text),
            (vocab_path.clone(), &vocab_text),
            (agreements_path.clone(), &agreements_text),
            (types_path.clone(), &types_text),
        ];
        all.extend(
            cedar_files
                .iter()
                .cloned()
                .zip(cedar_texts.iter().map(String::as_str)),
        );
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for (path, text) in &all {
            let rel = path
                .strip_prefix(dir)
                .unwrap_or(path)
                .to_string_lossy()
                .replace('\\', "/");
            ctx.update(rel.as_bytes());
            ctx.update(&[0]);
            ctx.update(&(text.len() as u64).to_be_bytes());
            ctx.update(text.as_bytes());
        }
        let fingerprint: String = ctx
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();

        let schema = match Schema::from_cedarschema_str(&schema_text) {
            Ok((s, _warnings)) => Some(s),
            Err(e) => {
                let (line, msg) = describe(&e, &schema_text);
                problems.push(Problem::at(
                    &schema_path,
                    line,
                    format!("invalid schema: {msg}"),
                ));
                None
            }
        };

        let vocab = match Vocabulary::parse(&vocab_path, &vocab_text) {
            Ok(v) => Some(v),
            Err(p) => {
                problems.push(p);
                None
            }
        };

        // Relationship types -> categories.
        let mut categories = HashMap::new();
        match serde_json::from_str::<HashMap<String, String>>(&types_text) {
            Ok(map) => {
                for (ty, cat) in map {
                    if ty.starts_with('_') {
                        continue;
                    }
                    if let Some(v) = &vocab {
                        Vocabulary::check(
                            &v.categories,
                            "categories",
                            [&cat],
                            &format!("relationship type {ty:?}"),
                            &types_path,
                            &mut problems,
                        );
                    }
                    categories.insert(ty, cat);
                }
            }
            Err(e) => problems.push(Problem::at(
                &types_path,
                Some(e.line()),
                format!("not a valid relationship types file (an object of type: category): {e}"),
            )),
        }

        let agreements = match &vocab {
            Some(v) => {
                parse_agreements(&agreements_path, &agreements_text, v, &names, &mut problems)
            }
            None => Vec::new(),
        };
        let agreement_ix: HashMap<&str, usize> = agreements
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id.as_str(), i))
            .collect();

        // Parse every policy, give it its @id, check annotations.
        let mut meta = HashMap::new();
        let mut file_of: HashMap<String, usize> = HashMap::new();
        let mut general = cedar_policy::PolicySet::new();
        let mut per_agreement: Vec<Vec<cedar_policy::Policy>> = vec![Vec::new(); agreements.len()];
        let mut everything = cedar_policy::PolicySet::new();
        for (fi, (path, text)) in cedar_files.iter().zip(&cedar_texts).enumerate() {
            let parsed = match cedar_policy::PolicySet::from_str(text) {
                Ok(p) => p,
                Err(errs) => {
                    for e in errs.iter() {
                        let (line, msg) = describe(e, text);
                        problems.push(Problem::at(path, line, format!("syntax error: {msg}")));
                    }
                    continue;
                }
            };
            if parsed.templates().next().is_some() {
                problems.push(Problem::new(path, "policy templates (?principal, ?resource) are not used in Kith; write plain policies"));
            }
            for p in parsed.policies() {
                let Some(id) = p
                    .annotation("id")
                    .map(str::to_string)
                    .filter(|s| !s.trim().is_empty())
                else {
                    let first = p
                        .to_string()
                        .lines()
                        .find(|l| !l.trim().starts_with('@'))
                        .unwrap_or_default()
                        .to_string();
                    problems.push(Problem::new(
                        path,
                        format!("a policy has no @id(\"...\") annotation (it begins {first:?})"),
                    ));
                    continue;
                };
                let line = text.find(&format!("\"{id}\"")).map(|o| line_of(text, o));
                if let Some(&other) = file_of.get(&id) {
                    problems.push(Problem::at(
                        path,
                        line,
                        format!(
                            "policy id {id:?} is already used in {}",
                            cedar_files[other].display()
                        ),
                    ));
                    continue;
                }
                let Some(reason) = p
                    .annotation("reason")
                    .map(str::to_string)
                    .filter(|s| !s.trim().is_empty())
                else {
                    problems.push(Problem::at(
                        path,
                        line,
                        format!("policy {id:?} has no @reason(\"...\") annotation explaining it"),
                    ));
                    continue;
                };
                let agreement = match p.annotation("agreement") {
                    None => None,
                    Some(a) => match agreement_ix.get(a) {
                        Some(&i) => Some(i),
                        None => {
                            problems.push(Problem::at(path, line, format!("policy {id:?} names @agreement({a:?}), which is not a valid agreement in {AGREEMENTS_FILE}")));
                            continue;
                        }
                    },
                };
                let p = p.new_id(PolicyId::new(&id));
                file_of.insert(id.clone(), fi);
                meta.insert(
                    id.clone(),
                    PolicyMeta {
                        reason,
                        advice: p.annotation("advice").map(str::to_string),
                        title: p.annotation("title").map(str::to_string),
                        agreement,
                    },
                );
                if let Err(e) = everything.add(p.clone()) {
                    problems.push(Problem::at(path, line, format!("policy {id:?}: {e}")));
                    continue;
                }
                match agreement {
                    Some(i) => per_agreement[i].push(p),
                    None => {
                        // Cannot fail: ids are unique (checked above).
                        let _ = general.add(p);
                    }
                }
            }
        }
        for (i, list) in per_agreement.iter().enumerate() {
            if list.is_empty() {
                problems.push(Problem::new(
                    &agreements_path,
                    format!(
                        "agreement {:?} has no policies (annotate them @agreement({:?}))",
                        agreements[i].id, agreements[i].id
                    ),
                ));
            }
        }

        let audit_defined = schema
            .as_ref()
            .is_some_and(|s| names.audit.iter().all(|a| s.actions().any(|x| x == a)));
        let review_defined = schema
            .as_ref()
            .is_some_and(|s| s.actions().any(|x| x == &names.review));
        let subscribe_defined = schema
            .as_ref()
            .is_some_and(|s| s.actions().any(|x| x == &names.subscribe));
        if let Some(schema) = &schema {
            // Strict validation of the whole set. A rule that names an audit
            // action is validated against the whole schema; any other rule
            // against the schema without the audit actions, so that a rule
            // with an unconstrained action scope is checked (and applies)
            // only for disclosure and data location, as before the audit
            // actions existed. Audit access is decided only by rules that
            // name an audit action (see `audit.rs`).
            let without_audit = if audit_defined {
                schema_without_audit(&schema_text)
            } else {
                None
            };
            let mut audit_rules = cedar_policy::PolicySet::new();
            let mut other_rules = cedar_policy::PolicySet::new();
            for p in everything.policies() {
                let to = if names_audit_action(p, &names) {
                    &mut audit_rules
                } else {
                    &mut other_rules
                };
                // Cannot fail: the ids are those of `everything`.
                let _ = to.add(p.clone());
            }
            let mut errors = Vec::new();
            let whole = Validator::new(schema.clone());
            match &without_audit {
                Some(narrow) => {
                    let r = whole.validate(&audit_rules, ValidationMode::Strict);
                    errors.extend(r.validation_errors().cloned());
                    let r = Validator::new(narrow.clone())
                        .validate(&other_rules, ValidationMode::Strict);
                    errors.extend(r.validation_errors().cloned());
                }
                None => {
                    let r = whole.validate(&everything, ValidationMode::Strict);
                    errors.extend(r.validation_errors().cloned());
                }
            }
            for e in &errors {
                let id = e.policy_id().to_string();
                let (path, text) = match file_of.get(&id) {
                    Some(&fi) => (cedar_files[fi].clone(), cedar_texts[fi].as_str()),
                    None => (dir.to_path_buf(), ""),
                };
                let (line, msg) = describe(e, text);
                problems.push(Problem::at(
                    path,
                    line,
                    format!("policy {id:?} fails schema validation: {msg}"),
                ));
            }
            for p in audit_rules.policies() {
                let id = p.id().to_string();
                if meta.get(&id).is_some_and(|m| m.agreement.is_some()) {
                    let path = file_of
                        .get(&id)
                        .map_or_else(|| dir.to_path_buf(), |&fi| cedar_files[fi].clone());
                    problems.push(Problem::new(
                        path,
                        format!("policy {id:?} names an audit action and has @agreement: audit access does not depend on sharing agreements; remove one or the other"),
                    ));
                }
            }
            // The schema must describe what the engine supplies.
            if let Some(p) = probe(
                &names,
                schema,
                agreements.first(),
                audit_defined,
                review_defined,
                subscribe_defined,
            ) {
                problems.push(Problem::new(
                    &schema_path,
                    format!("the schema does not match the requests Kith makes: {p}"),
                ));
            }
        }

        if !problems.is_empty() {
            return Err(PolicyError::Invalid(problems));
        }

        let known = names.known_actions();
        // Hold decisions: the general policies whose scope may apply to
        // `hold_detail`, evaluated as written.
        let mut hold = cedar_policy::PolicySet::new();
        for p in general
            .policies()
            .filter(|p| may_apply(p, &names.hold_detail, &known))
        {
            // Cannot fail: ids are unique (checked above).
            let _ = hold.add(p.clone());
        }
        // Audit access: the general policies that name an audit action.
        let mut audit = cedar_policy::PolicySet::new();
        for p in general.policies().filter(|p| names_audit_action(p, &names)) {
            // Cannot fail: ids are unique (checked above).
            let _ = audit.add(p.clone());
        }
        // Disclosure decisions: every policy in its evaluation form.
        let compiled_general: Vec<Compiled> = general
            .policies()
            .map(|p| compile(p, &names, &known))
            .filter(|c| c.mask != 0)
            .collect();
        let compiled_own: Vec<Vec<Compiled>> = per_agreement
            .iter()
            .map(|own| {
                own.iter()
                    .map(|p| compile(p, &names, &known))
                    .filter(|c| c.mask != 0)
                    .collect()
            })
            .collect();
        let mut masks = HashMap::new();
        for c in compiled_general.iter().chain(compiled_own.iter().flatten()) {
            masks.insert(c.policy.id().clone(), c.mask);
        }
        let permit_applies = |list: &[Compiled], k: usize| {
            list.iter()
                .any(|c| c.policy.effect() == Effect::Permit && c.mask & (1 << k) != 0)
        };
        let general_applies = [0, 1, 2].map(|k| permit_applies(&compiled_general, k));
        let agreement_applies = compiled_own
            .iter()
            .map(|own| [0, 1, 2].map(|k| permit_applies(own, k)))
            .collect();
        let is_record_forbid =
            |c: &&Compiled| c.policy.effect() == Effect::Forbid && c.agreement_free;
        let mut guards = GuardCache::new();
        let record_units = Units::build(
            compiled_general.iter().filter(is_record_forbid),
            &mut guards,
        );
        let bound_forbids: Vec<&Compiled> = compiled_general
            .iter()
            .filter(|c| c.policy.effect() == Effect::Forbid && !c.agreement_free)
            .collect();
        let mut general_units = Units::build(
            compiled_general
                .iter()
                .filter(|c| c.policy.effect() == Effect::Permit)
                .chain(bound_forbids.iter().copied()),
            &mut guards,
        );
        general_units.attach_record_guard(&record_units);
        let agreement_units = compiled_own
            .iter()
            .map(|own| {
                let mut u = Units::build(bound_forbids.iter().copied().chain(own), &mut guards);
                u.attach_record_guard(&record_units);
                u
            })
            .collect();
        let batch_base = (|| {
            let record = compiled_general
                .iter()
                .filter(is_record_forbid)
                .map(|c| Item::own(c, None))
                .collect::<Option<Vec<_>>>()?;
            let general = compiled_general
                .iter()
                .filter(|c| c.policy.effect() == Effect::Permit)
                .chain(bound_forbids.iter().copied())
                .map(|c| Item::own(c, None))
                .collect::<Option<Vec<_>>>()?;
            Some(Base {
                record,
                general,
                taken: meta.keys().cloned().collect(),
            })
        })();
        let bound_compiled: Vec<Compiled> = bound_forbids.into_iter().cloned().collect();
        let agreement_items = agreements.iter().map(|_| OnceLock::new()).collect();
        let index = AgreementIndex::build(&agreements);
        let Some(vocabulary) = vocab else {
            unreachable!("a vocabulary parse failure is a problem, returned above")
        };
        Ok(PolicySet {
            vocabulary,
            names,
            authorizer: Authorizer::new(),
            general_applies,
            record_units,
            general_units,
            agreement_units,
            agreement_applies,
            batch_base,
            bound_compiled,
            own_compiled: compiled_own,
            agreement_items,
            batches: BatchCache::default(),
            masks,
            hold,
            audit,
            audit_defined,
            review_defined,
            subscribe_defined,
            agreements,
            index,
            categories,
            meta,
            fingerprint,
            files: all.into_iter().map(|(p, _)| p).collect(),
        })
    }

    /// SHA-256 (hex) over every file loaded (relative path, length and
    /// content, in path order), for the audit entry of a policy load.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The files this set was loaded from (for a reloader to watch).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The `@reason` of a policy, for auditors and IG leads.
    pub fn explain(&self, policy_id: &str) -> Option<&str> {
        self.meta.get(policy_id).map(|m| m.reason.as_str())
    }

    /// The id and title of the agreement a policy belongs to, if any.
    pub fn agreement_of(&self, policy_id: &str) -> Option<(&str, &str)> {
        let i = self.meta.get(policy_id)?.agreement?;
        let a = &self.agreements[i];
        Some((a.id.as_str(), a.title.as_str()))
    }

    /// The agreements under which `requester` could receive anything for
    /// `purpose`, whoever the custodian (id and title). Used to tell a case
    /// worker who sees nothing whether any agreement covers their purpose at
    /// all; it depends only on the requester and purpose, never on records,
    /// so it reveals nothing about any record.
    pub fn agreements_covering(&self, requester: &Requester, purpose: &str) -> Vec<(&str, &str)> {
        self.agreements
            .iter()
            .filter(|a| {
                a.party_kinds.contains(&requester.authority_kind)
                    && a.purposes.contains(purpose)
                    && a.party_authorities
                        .as_ref()
                        .is_none_or(|p| p.contains(&requester.authority_code))
            })
            .map(|a| (a.id.as_str(), a.title.as_str()))
            .collect()
    }

    /// Number of policies loaded.
    pub fn policy_count(&self) -> usize {
        self.meta.len()
    }

    /// Number of agreements loaded.
    pub fn agreement_count(&self) -> usize {
        self.agreements.len()
    }

    /// Words in `requester` or `record` that are not in the set's
    /// vocabulary (authority kinds, jurisdictions, roles, sensitivities,
    /// residencies, purposes), one message each. Deciding does not need
    /// this (unknown words simply match no permit); it is for clear errors
    /// at the edge (publish validation, test cases).
    pub fn vocabulary_problems(
        &self,
        requester: Option<&Requester>,
        record: Option<&RecordFacts>,
    ) -> Vec<String> {
        let v = &self.vocabulary;
        let mut out = Vec::new();
        let mut want =
            |list: &std::collections::HashSet<String>, name: &str, field: &str, word: &str| {
                if !list.contains(word) {
                    out.push(format!(
                        "{field}: {word:?} is not in vocabulary.json {name}"
                    ));
                }
            };
        if let Some(r) = requester {
            want(
                &v.authority_kinds,
                "authority_kinds",
                "requester.authority_kind",
                &r.authority_kind,
            );
            want(
                &v.jurisdictions,
                "jurisdictions",
                "requester.jurisdiction",
                &r.jurisdiction,
            );
            want(&v.roles, "roles", "requester.role", &r.role);
        }
        if let Some(r) = record {
            want(
                &v.authority_kinds,
                "authority_kinds",
                "record.custodian_kind",
                &r.custodian_kind,
            );
            want(
                &v.jurisdictions,
                "jurisdictions",
                "record.custodian_jurisdiction",
                &r.custodian_jurisdiction,
            );
            want(
                &v.sensitivities,
                "sensitivities",
                "record.sensitivity",
                &r.sensitivity,
            );
            want(
                &v.residencies,
                "residencies",
                "record.residency",
                &r.residency,
            );
            for p in &r.permitted_purposes {
                want(&v.purposes, "purposes", "record.permitted_purposes", p);
            }
        }
        out
    }

    /// Agreement `i`'s policies in batch form: the general forbids that
    /// read `context.agreement` (renamed copies) and its own, specialised to
    /// it. `None` when one cannot be.
    pub(crate) fn agreement_items(&self, i: usize) -> Option<&[Item]> {
        self.agreement_items[i]
            .get_or_init(|| {
                let id = self.agreements[i].id.as_str();
                let taken = |s: &str| self.meta.contains_key(s);
                self.bound_compiled
                    .iter()
                    .map(|c| Item::new(c, copy_id(id, c.policy.id().as_ref(), &taken), Some(id)))
                    .chain(self.own_compiled[i].iter().map(|c| Item::own(c, Some(id))))
                    .collect()
            })
            .as_deref()
    }

    /// Whether some relationship type of the set belongs to `category`
    /// (relationship_types.json): a category a subscription may name.
    pub fn is_category(&self, category: &str) -> bool {
        self.categories.values().any(|c| c == category)
    }

    /// The category of a relationship type (`uncategorised` when unlisted).
    pub fn category_of(&self, relationship_type: &str) -> &str {
        self.categories
            .get(relationship_type)
            .map(String::as_str)
            .unwrap_or(UNCATEGORISED)
    }
}

/// Whether `p`'s action scope names an audit action.
fn names_audit_action(p: &cedar_policy::Policy, names: &Names) -> bool {
    match p.action_constraint() {
        ActionConstraint::Any => false,
        ActionConstraint::Eq(a) => names.is_audit_like(&a),
        ActionConstraint::In(list) => list.iter().any(|a| names.is_audit_like(a)),
    }
}

/// The schema with the audit actions removed (to validate the rules that do
/// not name them); `None` if it cannot be built.
fn schema_without_audit(text: &str) -> Option<Schema> {
    let (fragment, _warnings) = SchemaFragment::from_cedarschema_str(text).ok()?;
    let mut json = fragment.to_json_value().ok()?;
    let actions = json.get_mut("Kith")?.get_mut("actions")?.as_object_mut()?;
    for a in AUDIT_ACTIONS
        .into_iter()
        .chain([REVIEW_ACTION, SUBSCRIBE_ACTION])
    {
        actions.remove(a);
    }
    Schema::from_json_value(json).ok()
}

/// Builds one request of each shape the engine makes, validated against the
/// schema; returns the first mismatch.
fn probe(
    names: &Names,
    schema: &Schema,
    agreement: Option<&Agreement>,
    audit: bool,
    review: bool,
    subscribe: bool,
) -> Option<String> {
    let requester = Requester {
        authority_code: "PROBE-A".into(),
        authority_kind: "council".into(),
        jurisdiction: "england".into(),
        user_id: "probe".into(),
        role: "social_worker".into(),
        team: "probe".into(),
    };
    let record = RecordFacts {
        custodian_code: "PROBE-B".into(),
        custodian_kind: "nhs_trust".into(),
        custodian_jurisdiction: "england".into(),
        record_key: "probe".into(),
        relationship_type: "probe".into(),
        sensitivity: "normal".into(),
        residency: "uk".into(),
        lawful_basis: "probe".into(),
        permitted_purposes: vec!["direct_care".into()],
        objection: false,
        directive: "none".into(),
    };
    let agreements: Vec<&Agreement> = agreement.into_iter().collect();
    if let Err(e) = request_entities(
        names,
        &requester,
        &record,
        UNCATEGORISED,
        &agreements,
        Some(schema),
    ) {
        return Some(e);
    }
    if let Err(e) = hold_entities(names, &record, UNCATEGORISED, "england", Some(schema)) {
        return Some(e);
    }
    let mut contexts = vec![query_context("direct_care", 0, false, None)];
    if let Some(a) = agreement {
        contexts.push(query_context("direct_care", 0, false, Some(&a.uid)));
    }
    for ctx in contexts {
        let ctx = match ctx {
            Ok(c) => c,
            Err(e) => return Some(e),
        };
        for action in &names.disclosure {
            if let Err(e) = cedar_policy::Request::new(
                names.user(&requester),
                action.clone(),
                names.record(&record),
                ctx.clone(),
                Some(schema),
            ) {
                return Some(e.to_string());
            }
        }
    }
    if audit {
        if let Err(e) = crate::audit::audit_entities(names, &requester, Some(schema)) {
            return Some(e);
        }
        let resources = [
            names.federation(crate::audit::FEDERATION_ID),
            names.authority(&requester.authority_code),
        ];
        for (action, resource) in names.audit.iter().zip(resources) {
            if let Err(e) = cedar_policy::Request::new(
                names.user(&requester),
                action.clone(),
                resource,
                cedar_policy::Context::empty(),
                Some(schema),
            ) {
                return Some(e.to_string());
            }
        }
    }
    if review {
        if let Err(e) = crate::review::review_entities(names, &requester, &requester, Some(schema))
        {
            return Some(e);
        }
        if let Err(e) = cedar_policy::Request::new(
            names.user(&requester),
            names.review.clone(),
            crate::review::access_uid(names, &requester.authority_code, "probe"),
            cedar_policy::Context::empty(),
            Some(schema),
        ) {
            return Some(e.to_string());
        }
    }
    if subscribe {
        if let Err(e) = crate::subscribe::subscribe_entities(names, &requester, Some(schema)) {
            return Some(e);
        }
        let ctx = match crate::subscribe::subscribe_context("direct_care", 0, false) {
            Ok(c) => c,
            Err(e) => return Some(e),
        };
        if let Err(e) = cedar_policy::Request::new(
            names.user(&requester),
            names.subscribe.clone(),
            crate::subscribe::subscription_uid(names, &requester.authority_code),
            ctx,
            Some(schema),
        ) {
            return Some(e.to_string());
        }
    }
    cedar_policy::Request::new(
        names.hub("england"),
        names.hold_detail.clone(),
        names.record(&record),
        cedar_policy::Context::empty(),
        Some(schema),
    )
    .err()
    .map(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn policy_set_is_send_and_sync() {
        fn f<T: Send + Sync>() {}
        f::<super::PolicySet>();
    }
}
