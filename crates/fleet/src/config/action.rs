//! `[maintenance] action` and the settings that go with it, validated into an [`Action`].
//!
//! ```toml
//! [maintenance]
//! action = "reboot"                 # the default
//! # action = "restart"; services = ["opensearch"]
//! # action = "command"; command = "apt-get install -y bash"
//! #   check = "dpkg --compare-versions $(dpkg-query -W -f='${Version}' bash) ge 4.3-7"
//! #   then_reboot = false
//! ```

use super::{RawMaintenance, S, Validator};
use rollcall_core::model::Action;
use toml::Spanned;

/// The action's own fields, as written.
pub(super) struct RawAction<'r> {
    pub action: Option<&'r S>,
    pub services: Option<&'r Spanned<Vec<S>>>,
    pub command: Option<&'r S>,
    pub check: Option<&'r S>,
    pub then_reboot: Option<&'r Spanned<bool>>,
}

impl<'r> RawAction<'r> {
    pub fn of(m: &'r RawMaintenance) -> Self {
        RawAction {
            action: m.action.as_ref(),
            services: m.services.as_ref(),
            command: m.command.as_ref(),
            check: m.check.as_ref(),
            then_reboot: m.then_reboot.as_ref(),
        }
    }
}

const F: &str = "maintenance";

impl Validator<'_> {
    /// The validated action; `None` after reporting its errors.
    pub(super) fn action(&mut self, r: &RawAction) -> Option<Action> {
        let word = r.action.map(|a| a.get_ref().as_str()).unwrap_or("reboot");
        let span = r.action.map(|a| a.span()).unwrap_or(0..0);
        let action = match word {
            "reboot" => Some(Action::Reboot),
            "restart" => self.restart(r, span.clone()),
            "command" => self.command(r, span.clone()),
            other => {
                self.c.err_help(
                    span,
                    format!("{F}.action"),
                    format!("unknown action `{other}`"),
                    "one of `reboot` (the default), `restart` (services) or `command` (a patch)",
                );
                return None;
            }
        };
        self.foreign_fields(r, word);
        action
    }

    fn restart(&mut self, r: &RawAction, span: std::ops::Range<usize>) -> Option<Action> {
        let Some(list) = r.services else {
            self.c.err_help(
                span,
                format!("{F}.action"),
                "action = \"restart\" needs the services to restart",
                "add services = [\"opensearch\"] to [maintenance]",
            );
            return None;
        };
        if list.get_ref().is_empty() {
            self.c
                .err(list.span(), format!("{F}.services"), "names no service");
            return None;
        }
        let mut services: Vec<String> = Vec::new();
        let mut ok = true;
        for s in list.get_ref() {
            let name = s.get_ref().trim();
            if name.is_empty()
                || name.starts_with('-')
                || name
                    .chars()
                    .any(|c| c.is_whitespace() || c == ',' || c == '=')
            {
                self.c.err(
                    s.span(),
                    format!("{F}.services"),
                    format!("`{}` is not a service name", s.get_ref()),
                );
                ok = false;
            } else if services.iter().any(|x| x == name) {
                self.c.err(
                    s.span(),
                    format!("{F}.services"),
                    format!("`{name}` is listed twice"),
                );
                ok = false;
            } else {
                services.push(name.to_string());
            }
        }
        ok.then_some(Action::Restart { services })
    }

    fn command(&mut self, r: &RawAction, span: std::ops::Range<usize>) -> Option<Action> {
        let command = self.required_text(r.command, "command", &span, "the patch command");
        let check = self.required_text(
            r.check,
            "check",
            &span,
            "a command that exits 0 when the patch is applied (so it is never run twice)",
        );
        Some(Action::Command {
            command: command?,
            check: check?,
            then_reboot: r.then_reboot.map(|b| *b.get_ref()).unwrap_or(false),
        })
    }

    fn required_text(
        &mut self,
        s: Option<&S>,
        key: &str,
        action_span: &std::ops::Range<usize>,
        what: &str,
    ) -> Option<String> {
        match s {
            None => {
                self.c.err_help(
                    action_span.clone(),
                    format!("{F}.action"),
                    format!("action = \"command\" needs `{key}`: {what}"),
                    format!("add {key} = \"...\" to [maintenance]"),
                );
                None
            }
            Some(s) if s.get_ref().trim().is_empty() => {
                self.c
                    .err(s.span(), format!("{F}.{key}"), "must not be empty");
                None
            }
            Some(s) => Some(s.get_ref().clone()),
        }
    }

    /// Settings of another action are an error, not silently ignored.
    fn foreign_fields(&mut self, r: &RawAction, word: &str) {
        let mut foreign = |key: &str, span: Option<std::ops::Range<usize>>, owner: &str| {
            if let Some(span) = span
                && word != owner
            {
                self.c.err_help(
                    span,
                    format!("{F}.{key}"),
                    format!("`{key}` belongs to action = \"{owner}\", not \"{word}\""),
                    format!("remove it, or set action = \"{owner}\""),
                );
            }
        };
        foreign("services", r.services.map(|s| s.span()), "restart");
        foreign("command", r.command.map(|s| s.span()), "command");
        foreign("check", r.check.map(|s| s.span()), "command");
        foreign("then_reboot", r.then_reboot.map(|s| s.span()), "command");
    }
}
