//! The closed vocabularies of entry fields: where it hurts, which side, how severe, what made
//! it worse or eased it, which treatment. Each is a fieldless enum written as snake_case words,
//! and a [`Vocabulary`] the field table and its messages read without knowing the enum.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A closed list of words, as the field table sees it: what a value may be, and the order a
/// list of them is written in.
#[derive(Debug, PartialEq, Eq)]
pub struct Vocabulary {
    /// The vocabulary's name, for placeholders in help text (`SEVERITY`).
    pub name: &'static str,
    /// Every word in snake_case, in the vocabulary's order.
    pub words: &'static [&'static str],
}

impl Vocabulary {
    /// Position of `text` among the words. Letter case, surrounding spaces and kebab-case
    /// (`heel-bottom` for `heel_bottom`) are forgiven.
    pub fn position(&self, text: &str) -> Result<usize, String> {
        // Stored and synced words are written exactly: found without a normalised copy.
        if let Some(at) = self.words.iter().position(|word| *word == text) {
            return Ok(at);
        }
        let normal = text.trim().to_ascii_lowercase().replace('-', "_");
        self.words
            .iter()
            .position(|word| *word == normal)
            .ok_or_else(|| {
                format!(
                    "unknown value `{text}`; expected one of: {}",
                    self.choices()
                )
            })
    }

    /// The allowed words, comma-separated, for messages and help.
    pub fn choices(&self) -> String {
        self.words.join(", ")
    }
}

/// A word of one vocabulary, as its own type.
pub trait Word: Copy + Ord + fmt::Debug + fmt::Display + 'static {
    /// The vocabulary the word belongs to.
    const VOCABULARY: &'static Vocabulary;
    /// Every word, in the vocabulary's order.
    const EVERY: &'static [Self];
    /// Position of the word in its vocabulary.
    fn position(self) -> usize;
}

/// A set of words of one vocabulary, as bits over the words' positions: what a list field
/// holds, with its order and repeats already canonical.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct WordSet(u32);

impl WordSet {
    /// The set of `words`.
    pub fn of<W: Word>(words: &[W]) -> WordSet {
        WordSet(
            words
                .iter()
                .fold(0, |bits, word| bits | (1 << word.position())),
        )
    }

    /// Whether `word` is in the set.
    pub fn contains<W: Word>(self, word: W) -> bool {
        self.0 & (1 << word.position()) != 0
    }

    /// Whether the word at `position` of its vocabulary is in the set.
    pub fn contains_position(self, position: usize) -> bool {
        position < 32 && self.0 & (1 << position) != 0
    }

    /// Every word in either set.
    pub fn union(self, other: WordSet) -> WordSet {
        WordSet(self.0 | other.0)
    }

    /// Whether the set holds no word.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The words of the set, in the vocabulary's order.
    pub fn words<W: Word>(self) -> impl Iterator<Item = W> {
        W::EVERY
            .iter()
            .copied()
            .filter(move |word| self.contains(*word))
    }
}

/// Declares a closed vocabulary: a fieldless enum written as snake_case strings, parsed from
/// snake_case or kebab-case (`heel_bottom`, `heel-bottom`), with its [`Vocabulary`].
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every word of this vocabulary, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The words as the field table sees them.
            pub const VOCABULARY: Vocabulary = Vocabulary {
                name: stringify!($name),
                words: &[$($word),+],
            };

            /// The snake_case word used in JSON and storage.
            pub fn as_str(self) -> &'static str {
                Self::VOCABULARY.words[self as usize]
            }

            /// The allowed words, comma-separated, for messages and help.
            pub fn choices() -> String {
                Self::VOCABULARY.choices()
            }
        }

        // A `WordSet` holds a vocabulary in 32 bits.
        const _: () = assert!($name::ALL.len() <= 32);

        impl Word for $name {
            const VOCABULARY: &'static Vocabulary = &$name::VOCABULARY;
            const EVERY: &'static [$name] = $name::ALL;
            fn position(self) -> usize {
                self as usize
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::VOCABULARY.position(s).map(|at| Self::ALL[at])
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let word = String::deserialize(d)?;
                word.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Every vocabulary's words, handed to a declaring macro: this crate declares its enums from
/// it, and a binding crate (which this crate must never depend on) declares its mirrors from the
/// same table, so a word is written once.
#[macro_export]
#[doc(hidden)]
macro_rules! with_vocabularies {
    ($declare:ident) => {
        $declare! {
            /// Where it hurts.
            Location {
                /// Bottom of the heel, where the plantar fascia attaches.
                HeelBottom = "heel_bottom",
                /// Back of the heel.
                HeelBack = "heel_back",
                /// Arch of the foot.
                Arch = "arch",
                /// Lower back.
                LowerBack = "lower_back",
                /// Buttock.
                Buttock = "buttock",
                /// Thigh.
                Thigh = "thigh",
                /// Calf.
                Calf = "calf",
                /// Elsewhere in the foot.
                Foot = "foot",
                /// Toes.
                Toes = "toes",
            }
        }

        $declare! {
            /// Which side hurts.
            Side {
                /// Left only.
                Left = "left",
                /// Right only.
                Right = "right",
                /// Both sides.
                Both = "both",
            }
        }

        $declare! {
            /// Severity of numbness, tingling or burning. `Absent` is the word `none` (an enum case
            /// named `none` would clash with `Optional.none` in Swift).
            Severity {
                /// Not present.
                Absent = "none",
                /// Mild.
                Mild = "mild",
                /// Moderate.
                Moderate = "moderate",
                /// Severe.
                Severe = "severe",
            }
        }

        $declare! {
            /// What made the pain worse or eased it.
            Trigger {
                /// Sitting.
                Sitting = "sitting",
                /// Bending forward.
                Bending = "bending",
                /// Lifting.
                Lifting = "lifting",
                /// Standing for a long time.
                Standing = "standing",
                /// Walking.
                Walking = "walking",
                /// Running.
                Running = "running",
                /// Coughing or sneezing.
                Coughing = "coughing",
                /// Resting.
                Rest = "rest",
            }
        }

        $declare! {
            /// A treatment used that day.
            Treatment {
                /// Stretching of the plantar fascia or calf.
                Stretching = "stretching",
                /// Ice.
                Ice = "ice",
                /// Anti-inflammatory drugs.
                Nsaids = "nsaids",
                /// Orthotics or supportive footwear.
                Orthotics = "orthotics",
                /// Night splint.
                NightSplint = "night_splint",
                /// Rest.
                Rest = "rest",
                /// Shockwave or ultrasound therapy.
                Shockwave = "shockwave",
                /// Corticosteroid injection in the foot.
                SteroidInjection = "steroid_injection",
                /// Physical therapy.
                PhysicalTherapy = "physical_therapy",
                /// Epidural steroid injection.
                EpiduralInjection = "epidural_injection",
                /// Spinal decompression therapy.
                Decompression = "decompression",
                /// Surgery.
                Surgery = "surgery",
                /// Muscle relaxants or oral steroids.
                Medication = "medication",
                /// Anything else (say what in the note).
                Other = "other",
            }
        }
    };
}

with_vocabularies!(vocabulary);

impl Severity {
    /// 0 for none up to 3 for severe, for trend statistics.
    pub fn rank(self) -> u8 {
        match self {
            Severity::Absent => 0,
            Severity::Mild => 1,
            Severity::Moderate => 2,
            Severity::Severe => 3,
        }
    }
}

impl Treatment {
    /// Conservative care: what clinicians expect to try for about six weeks before escalating.
    pub fn is_conservative(self) -> bool {
        !matches!(
            self,
            Treatment::SteroidInjection | Treatment::EpiduralInjection | Treatment::Surgery
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_parse_in_any_case_and_in_kebab_case() {
        assert_eq!(
            " Heel-Bottom ".parse::<Location>(),
            Ok(Location::HeelBottom)
        );
        assert_eq!(
            "extreme".parse::<Severity>().unwrap_err(),
            "unknown value `extreme`; expected one of: none, mild, moderate, severe"
        );
    }

    #[test]
    fn every_word_is_at_its_position() {
        fn check<W: Word + FromStr<Err = String>>() {
            for (at, word) in W::EVERY.iter().enumerate() {
                assert_eq!(word.position(), at);
                assert_eq!(word.to_string(), W::VOCABULARY.words[at]);
                assert_eq!(W::VOCABULARY.words[at].parse::<W>(), Ok(*word));
                // A word is its own normal form, so an exact match finds what normalising
                // the text would.
                let written = W::VOCABULARY.words[at];
                assert_eq!(
                    written.trim().to_ascii_lowercase().replace('-', "_"),
                    written
                );
            }
            assert_eq!(W::EVERY.len(), W::VOCABULARY.words.len());
        }
        check::<Location>();
        check::<Side>();
        check::<Severity>();
        check::<Trigger>();
        check::<Treatment>();
    }

    #[test]
    fn word_sets_keep_the_vocabulary_order() {
        let set = WordSet::of(&[Trigger::Rest, Trigger::Sitting, Trigger::Rest]);
        assert!(set.contains(Trigger::Sitting) && !set.contains(Trigger::Walking));
        assert_eq!(
            set.words::<Trigger>().collect::<Vec<_>>(),
            vec![Trigger::Sitting, Trigger::Rest]
        );
        assert!(WordSet::default().is_empty());
        assert!(set
            .union(WordSet::of(&[Trigger::Walking]))
            .contains(Trigger::Walking));
    }
}
