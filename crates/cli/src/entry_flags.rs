//! The entry fields as command-line flags, shared by `log` and `edit`: one flag for every field
//! a person writes, built from the field table and read back by the field's kind, so a new
//! field needs no edit here.

use clap::builder::ValueParser;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};
use heeldiary_core::{EntryInput, Field, Kind, Writer, MAX_SCORE};
use serde_json::Value;

/// Where the field flags appear in `--help`.
const HEADING: &str = "Entry fields";

/// The fields set by flags, unvalidated: the core rules check them, so errors name the field.
#[derive(Debug, Default)]
pub struct EntryFlags(EntryInput);

impl EntryFlags {
    /// The fields these flags set, unvalidated.
    pub fn into_input(self) -> EntryInput {
        self.0
    }
}

/// The fields that get a flag here: every field a person writes but the day, whose `--date`
/// each command declares itself (the day described when logging, a move when editing).
fn flagged() -> impl Iterator<Item = Field> {
    Field::ALL
        .iter()
        .copied()
        .filter(|field| field.writer() == Writer::Person && field.kind() != Kind::Day)
}

/// Words as a person types them on a command line (kebab-case; snake_case works too).
fn typed(words: &[&str]) -> String {
    words.join(", ").replace('_', "-")
}

fn help(field: Field) -> String {
    let spec = field.spec();
    let flag = field.flag().unwrap_or_default();
    match spec.kind {
        Kind::Score => format!("{}, 0–{MAX_SCORE}", spec.help),
        Kind::Count { max } => format!("{}, 0–{max}", spec.help),
        Kind::Flag => format!("{} (`--{flag}=false` to say no)", spec.help),
        Kind::Word(vocabulary) | Kind::Words(vocabulary) => {
            format!("{}: {}", spec.help, typed(vocabulary.words))
        }
        Kind::Text { max_chars } => format!("{} (at most {max_chars} characters)", spec.help),
        Kind::Day | Kind::Instant | Kind::Tombstone => spec.help.to_string(),
    }
}

fn arg(field: Field) -> Arg {
    let arg = Arg::new(field.as_str())
        .long(field.flag().unwrap_or_default().into_owned())
        .help(help(field))
        .help_heading(HEADING);
    match field.kind() {
        Kind::Score | Kind::Count { .. } => arg
            .value_name("N")
            .allow_negative_numbers(true)
            .value_parser(clap::value_parser!(i64)),
        Kind::Flag => arg
            .value_name("BOOL")
            .num_args(0..=1)
            .default_missing_value("true")
            .value_parser(clap::value_parser!(bool)),
        Kind::Word(vocabulary) => arg
            .value_name(vocabulary.name.to_uppercase())
            .value_parser(ValueParser::string()),
        Kind::Words(_) => arg
            .value_name("LIST")
            .value_delimiter(',')
            .action(ArgAction::Append)
            .value_parser(ValueParser::string()),
        Kind::Text { .. } | Kind::Day | Kind::Instant | Kind::Tombstone => {
            arg.value_name("TEXT").value_parser(ValueParser::string())
        }
    }
}

/// The value a flag gave, as JSON for the core rules.
fn value(field: Field, matches: &ArgMatches) -> Option<Value> {
    let id = field.as_str();
    match field.kind() {
        Kind::Score | Kind::Count { .. } => matches.get_one::<i64>(id).map(|n| Value::from(*n)),
        Kind::Flag => matches.get_one::<bool>(id).map(|yes| Value::from(*yes)),
        Kind::Words(_) => matches.get_many::<String>(id).map(|items| {
            Value::from(
                items
                    .filter(|item| !item.is_empty())
                    .cloned()
                    .collect::<Vec<_>>(),
            )
        }),
        _ => matches
            .get_one::<String>(id)
            .map(|text| Value::from(text.as_str())),
    }
}

impl FromArgMatches for EntryFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut input = EntryInput::default();
        for field in flagged() {
            if let Some(value) = value(field, matches) {
                input.set(field, value);
            }
        }
        Ok(EntryFlags(input))
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Args for EntryFlags {
    fn augment_args(command: Command) -> Command {
        command.args(flagged().map(arg))
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::{Cli, Command as Cmd};

    #[test]
    fn log_and_edit_have_a_flag_for_every_field_a_person_writes() {
        let cli = Cli::command();
        for name in ["log", "edit"] {
            let command = cli.find_subcommand(name).expect("the command exists");
            let longs: BTreeSet<&str> = command.get_arguments().filter_map(Arg::get_long).collect();
            for field in Field::ALL.iter().filter(|f| f.writer() == Writer::Person) {
                let flag = field.flag().expect("a person's field has a flag");
                assert!(
                    longs.contains(flag.as_ref()),
                    "{name}: no --{flag} for {field}"
                );
            }
        }
    }

    /// A command line setting every flag, with a value of each kind.
    fn every_flag() -> Vec<String> {
        let mut line = vec!["heeldiary".to_string(), "log".to_string()];
        for field in flagged() {
            let flag = format!("--{}", field.flag().unwrap_or_default());
            match field.kind() {
                Kind::Flag => line.push(flag),
                Kind::Score | Kind::Count { .. } => line.extend([flag, "3".into()]),
                Kind::Word(vocabulary) => line.extend([flag, typed(&vocabulary.words[..1])]),
                Kind::Words(vocabulary) => {
                    line.extend([flag, typed(&vocabulary.words[..2]).replace(' ', "")])
                }
                _ => line.extend([flag, "some text".into()]),
            }
        }
        line
    }

    #[test]
    fn every_flag_reaches_its_field_and_keeps_its_rule() {
        let Cmd::Log { fields, .. } = Cli::try_parse_from(every_flag()).unwrap().command else {
            panic!("not a log command");
        };
        let input = fields.into_input();
        assert_eq!(
            input.fields.keys().copied().collect::<Vec<_>>(),
            flagged().collect::<Vec<_>>()
        );
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 10).unwrap();
        let patch = input
            .into_edit_patch(today)
            .expect("every sample keeps its rule");
        assert_eq!(patch[&Field::Radiating], Value::Bool(true));
        assert_eq!(
            patch[&Field::Locations],
            serde_json::json!(["heel_bottom", "heel_back"])
        );
    }

    #[test]
    fn flags_keep_their_spellings() {
        let parse = |line: &[&str]| match Cli::try_parse_from(line).unwrap().command {
            Cmd::Log { fields, .. } => fields.into_input().fields,
            _ => panic!("not a log command"),
        };
        let fields = parse(&[
            "heeldiary",
            "log",
            "--radiating=false",
            "--where",
            "heel-bottom,,arch",
            "--treatment",
            "night-splint",
            "--first-step-pain",
            "-1",
        ]);
        assert_eq!(fields[&Field::Radiating], Value::Bool(false));
        assert_eq!(
            fields[&Field::Locations],
            serde_json::json!(["heel-bottom", "arch"])
        );
        assert_eq!(
            fields[&Field::Treatments],
            serde_json::json!(["night-splint"])
        );
        assert_eq!(fields[&Field::FirstStepPain], serde_json::json!(-1));
        let help = Cli::command()
            .find_subcommand_mut("log")
            .unwrap()
            .render_help()
            .to_string();
        assert!(help.contains("Entry fields:"), "{help}");
        assert!(help.contains("--where <LIST>"), "{help}");
        assert!(help.contains("heel-bottom, heel-back"), "{help}");
    }
}
