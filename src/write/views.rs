//! The views command: save, change or delete a saved view of an environment, installed in the
//! settings registry once committed (alert rules count views off the writer).

use super::engine::{Check, Command, Tx, WriteError};
use crate::model::alert::AlertRule;
use crate::model::view::StoredView;
use crate::store::StoreError;
use crate::views::{self, View, ViewQuery, ViewRefused, MAX_VIEWS};

/// What to do to an environment's saved views.
#[derive(Debug)]
pub enum ViewChange {
    /// Save a new view; `id` left out is made from the name.
    Create {
        id: Option<String>,
        name: String,
        query: ViewQuery,
    },
    /// Rename a view or replace its query (a field left out is unchanged).
    Update {
        id: String,
        name: Option<String>,
        query: Option<ViewQuery>,
    },
    Delete {
        id: String,
    },
}

/// A change of one environment's views. The name and query are checked by the caller
/// (`views::check_name`, `views::check_query`); this checks them against what is stored.
pub struct ChangeView {
    pub environment: String,
    pub change: ViewChange,
    /// Whether the caller may change a view an alert rule counts (the admin may; a reader may
    /// not, or it could silence an alert).
    pub may_change_alerted: bool,
}

impl Command for ChangeView {
    /// The view as saved (`None` once deleted).
    type Reply = Option<View>;
    type Plan = ViewPlan;

    fn check(self, tx: &mut Check<'_>) -> Result<ViewPlan, WriteError> {
        check(self, tx)
    }

    fn write(plan: ViewPlan, tx: &mut Tx<'_>) -> Result<Option<View>, StoreError> {
        write(plan, tx)
    }
}

/// What `check` decided: the row to write or remove.
pub enum ViewPlan {
    Put {
        environment: String,
        view: Box<StoredView>,
    },
    Remove {
        environment: String,
        id: String,
    },
}

fn check(command: ChangeView, tx: &mut Check<'_>) -> Result<ViewPlan, WriteError> {
    let ChangeView {
        environment,
        change,
        may_change_alerted,
    } = command;
    let saved = tx.db.views(&environment)?;
    let rules = effective_rules(tx, &environment)?;
    let counted_by = |id: &str| -> Option<String> {
        rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.view_id() == id)
            .map(|(i, r)| format!("alerts[{i}] ({})", r.key()))
    };
    let refused = |r: ViewRefused| Err(WriteError::View(r));
    let name_taken = |name: &str, except: Option<&str>| {
        saved
            .iter()
            .any(|v| Some(v.id.as_str()) != except && v.name.to_lowercase() == name.to_lowercase())
            || views::all(&[])
                .iter()
                .any(|b| b.name.to_lowercase() == name.to_lowercase())
    };
    match change {
        ViewChange::Create { id, name, query } => {
            if saved.len() >= MAX_VIEWS {
                return refused(ViewRefused::TooMany);
            }
            if name_taken(&name, None) {
                return refused(ViewRefused::Taken {
                    field: "name",
                    value: name,
                });
            }
            let taken = |id: &str| views::is_builtin(id) || saved.iter().any(|v| v.id == id);
            let id = match id {
                Some(id) if taken(&id) => {
                    return refused(ViewRefused::Taken {
                        field: "id",
                        value: id,
                    })
                }
                Some(id) => id,
                None => {
                    let base = views::id_from_name(&name);
                    let mut id = base.clone();
                    let mut n = 2;
                    while taken(&id) {
                        id = format!("{base}-{n}");
                        n += 1;
                    }
                    id
                }
            };
            let view = StoredView {
                id,
                name,
                query,
                created_at: tx.now,
                updated_at: tx.now,
            };
            Ok(ViewPlan::Put {
                environment,
                view: Box::new(view),
            })
        }
        ViewChange::Update { id, name, query } => {
            if views::is_builtin(&id) {
                return refused(ViewRefused::Builtin(id));
            }
            let Some(mut view) = saved.iter().find(|v| v.id == id).cloned() else {
                return refused(ViewRefused::NotFound(id));
            };
            if let Some(rule) = counted_by(&id) {
                let query_changes = query.as_ref().is_some_and(|q| *q != view.query);
                if query_changes && !may_change_alerted {
                    return refused(ViewRefused::NeedsAdmin { id, rule });
                }
            }
            if let Some(name) = name {
                if name_taken(&name, Some(&id)) {
                    return refused(ViewRefused::Taken {
                        field: "name",
                        value: name,
                    });
                }
                view.name = name;
            }
            if let Some(query) = query {
                view.query = query;
            }
            view.updated_at = tx.now;
            Ok(ViewPlan::Put {
                environment,
                view: Box::new(view),
            })
        }
        ViewChange::Delete { id } => {
            if views::is_builtin(&id) {
                return refused(ViewRefused::Builtin(id));
            }
            if !saved.iter().any(|v| v.id == id) {
                return refused(ViewRefused::NotFound(id));
            }
            if let Some(rule) = counted_by(&id) {
                return refused(if may_change_alerted {
                    ViewRefused::InUse { id, rule }
                } else {
                    ViewRefused::NeedsAdmin { id, rule }
                });
            }
            Ok(ViewPlan::Remove { environment, id })
        }
    }
}

fn write(plan: ViewPlan, tx: &mut Tx<'_>) -> Result<Option<View>, StoreError> {
    let (environment, saved) = match plan {
        ViewPlan::Put { environment, view } => {
            tx.db.put_view(&environment, &view)?;
            (environment, Some(View::new(&view)))
        }
        ViewPlan::Remove { environment, id } => {
            tx.db.remove_view(&environment, &id)?;
            (environment, None)
        }
    };
    if tx.deps.settings.get(&environment).is_some() {
        let settings = super::settings::stored_settings(tx, &environment)?;
        tx.settings_changed(settings);
    }
    Ok(saved)
}

/// The rules in force: the config file's when it sets them, else the stored ones (as this
/// group has written them).
fn effective_rules(tx: &Check<'_>, environment: &str) -> Result<Vec<AlertRule>, StoreError> {
    Ok(match tx.deps.settings.alerts_file(environment) {
        Some(rules) => rules.clone(),
        None => tx
            .db
            .alert_settings(environment)?
            .unwrap_or_default()
            .rules(environment),
    })
}
