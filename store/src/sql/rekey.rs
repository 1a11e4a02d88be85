//! [`Rekey`]: moving a table's rows to a new sorting key under the same name (`ALTER` cannot
//! change a key), as a plan of five statements and a pure [`Rekey::next_step`] that picks,
//! from what exists ([`RekeySeen`]), the step still to do. The store's runner and the chdb
//! compatibility test drive the same function, so a migration interrupted anywhere (a crash,
//! a restart on the same data dir, a second process migrating at the same moment) is
//! finished the same way on 18.16 and on 26.9.

/// The plan. The new table takes the name first, so writers that come meanwhile write to it;
/// then the old rows are copied over (copies of one key collapse, so copying twice, after a
/// crash or by two processes migrating at once, changes nothing) and the old table is
/// dropped: `create` (empty until promoted, so one left by a crash is reused) → `retire`
/// (old → `old_table`) → `promote` (new → `table`) → `copy` (old rows in) → `cleanup`
/// (drop `old_table`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rekey {
    /// The storage table (`decisions`, or `decisions_local` on a cluster).
    pub table: String,
    /// Where the new table is made before it takes the name (`decisions_rekeyed`).
    pub new_table: String,
    /// Where the old table waits until its rows are copied (`decisions_before_rekey`).
    pub old_table: String,
    /// The new `ORDER BY`, as `system.tables.engine_full` shows it: `(tenant, event_id)`.
    pub new_key: String,
    pub create: String,
    pub retire: String,
    pub promote: String,
    pub copy: String,
    pub cleanup: String,
}

/// What exists of a rekey's three tables (in gatelog's database).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RekeySeen {
    /// `engine_full` of [`Rekey::table`]; `None` when it does not exist.
    pub table: Option<String>,
    /// Whether [`Rekey::new_table`] exists.
    pub new_table: bool,
    /// Whether [`Rekey::old_table`] exists.
    pub old_table: bool,
}

/// The step a rekey takes next ([`Rekey::next_step`]); [`Rekey::statements_of`] gives its SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RekeyStep {
    /// The table still has its old key: create the new table (or reuse the empty one a
    /// crash left) and move the old one aside.
    CreateAndRetire,
    /// Only the old table is there (a crash after `retire` of an attempt whose new table is
    /// gone): create the new table, which the next look promotes.
    Create,
    /// Between the two renames: the new table takes the name.
    Promote,
    /// The table has the new key and the old rows still wait aside: copy them in (again, if
    /// an earlier copy was interrupted: copies collapse), then drop the old table.
    CopyAndCleanup,
    /// The table has the new key and nothing waits aside.
    Done,
}

impl Rekey {
    /// The five statements in plan order (what the migration's checksum covers).
    pub fn statements(&self) -> Vec<String> {
        [&self.create, &self.retire, &self.promote, &self.copy, &self.cleanup].into_iter().cloned().collect()
    }

    /// Whether `engine_full` is the table with the new key.
    pub fn is_rekeyed(&self, engine_full: &str) -> bool {
        engine_full.contains(&format!("ORDER BY {}", self.new_key))
    }

    /// The step still to do when `seen` is what exists; `Err` names what is missing when
    /// there is nothing to move and nothing to move to (someone dropped the tables).
    pub fn next_step(&self, seen: &RekeySeen) -> Result<RekeyStep, String> {
        Ok(match &seen.table {
            Some(engine) if self.is_rekeyed(engine) => {
                if seen.old_table {
                    RekeyStep::CopyAndCleanup
                } else {
                    RekeyStep::Done
                }
            }
            Some(_) => RekeyStep::CreateAndRetire,
            None if seen.new_table => RekeyStep::Promote,
            None if seen.old_table => RekeyStep::Create,
            None => {
                return Err(format!(
                    "table {} is missing, and neither {} nor {} is there to take its place",
                    self.table, self.new_table, self.old_table
                ));
            }
        })
    }

    /// The statements of `step`, in order.
    pub fn statements_of(&self, step: RekeyStep) -> Vec<&str> {
        match step {
            RekeyStep::CreateAndRetire => vec![&self.create, &self.retire],
            RekeyStep::Create => vec![&self.create],
            RekeyStep::Promote => vec![&self.promote],
            RekeyStep::CopyAndCleanup => vec![&self.copy, &self.cleanup],
            RekeyStep::Done => Vec::new(),
        }
    }
}

/// How many times a runner looks at the tables and takes one step before it gives up: four
/// steps from the old key to done, and a few more when another process takes the same step
/// at the same moment (its step then fails, and the next look sees what the other did).
pub const REKEY_LOOKS: usize = 12;

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Rekey {
        Rekey {
            table: "decisions".into(),
            new_table: "decisions_rekeyed".into(),
            old_table: "decisions_before_rekey".into(),
            new_key: "(tenant, event_id)".into(),
            create: "create".into(),
            retire: "retire".into(),
            promote: "promote".into(),
            copy: "copy".into(),
            cleanup: "cleanup".into(),
        }
    }

    const OLD: &str = "ReplacingMergeTree PARTITION BY toYYYYMM(time) ORDER BY (tenant, time, event_id) SETTINGS x";
    const NEW: &str = "ReplacingMergeTree PARTITION BY toYYYYMM(time) ORDER BY (tenant, event_id) SETTINGS x";

    /// A model of the tables, changed by the plan's statements as the server would.
    fn apply(seen: &mut RekeySeen, sql: &str) {
        match sql {
            "create" => seen.new_table = true,
            "retire" => {
                assert!(seen.table.is_some() && !seen.old_table, "retire needs the table and a free name");
                seen.table = None;
                seen.old_table = true;
            }
            "promote" => {
                assert!(seen.table.is_none() && seen.new_table, "promote needs the new table and a free name");
                seen.table = Some(NEW.into());
                seen.new_table = false;
            }
            "copy" => assert!(seen.old_table),
            "cleanup" => seen.old_table = false,
            other => panic!("unknown statement {other}"),
        }
    }

    fn finish(mut seen: RekeySeen) -> Vec<RekeyStep> {
        let p = plan();
        let mut steps = Vec::new();
        for _ in 0..REKEY_LOOKS {
            let step = p.next_step(&seen).unwrap();
            steps.push(step);
            if step == RekeyStep::Done {
                return steps;
            }
            for sql in p.statements_of(step) {
                apply(&mut seen, sql);
            }
        }
        panic!("did not finish: {steps:?}");
    }

    #[test]
    fn from_the_old_key_every_step_runs_once() {
        let old = RekeySeen { table: Some(OLD.into()), ..RekeySeen::default() };
        assert_eq!(
            finish(old),
            [RekeyStep::CreateAndRetire, RekeyStep::Promote, RekeyStep::CopyAndCleanup, RekeyStep::Done]
        );
    }

    #[test]
    fn an_attempt_stopped_after_any_statement_is_finished() {
        let p = plan();
        let statements = p.statements();
        for done in 0..=statements.len() {
            let mut seen = RekeySeen { table: Some(OLD.into()), ..RekeySeen::default() };
            for sql in &statements[..done] {
                apply(&mut seen, sql);
            }
            let steps = finish(seen);
            assert_eq!(steps.last(), Some(&RekeyStep::Done), "stopped after {done}");
            assert!(steps.len() <= 4, "stopped after {done}: {steps:?}");
        }
    }

    #[test]
    fn a_crash_that_lost_the_new_table_after_retire_creates_it_again() {
        let seen = RekeySeen { table: None, new_table: false, old_table: true };
        assert_eq!(finish(seen), [RekeyStep::Create, RekeyStep::Promote, RekeyStep::CopyAndCleanup, RekeyStep::Done]);
    }

    #[test]
    fn nothing_to_move_and_nowhere_to_move_it_is_an_error_naming_the_tables() {
        let err = plan().next_step(&RekeySeen::default()).unwrap_err();
        assert!(err.contains("decisions is missing") && err.contains("decisions_before_rekey"), "{err}");
    }

    #[test]
    fn the_key_is_read_from_engine_full() {
        let p = plan();
        assert!(p.is_rekeyed(NEW));
        assert!(!p.is_rekeyed(OLD));
        assert!(!p.is_rekeyed("ReplacingMergeTree ORDER BY (tenant, event_id, time)"));
    }
}
