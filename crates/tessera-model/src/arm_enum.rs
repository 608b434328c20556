//! Case-insensitive string enums, as ARM treats enum values (`"Tcp"`, `"tcp"` and `"TCP"` are one).

/// Declares an enum whose JSON form is one of the given strings, matched case-insensitively and
/// written back in ARM's spelling.
#[macro_export]
macro_rules! arm_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value with its ARM spelling.
            pub const ALL: &'static [($name, &'static str)] = &[$(($name::$variant, $text)),+];
            /// The ARM spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            /// Parses case-insensitively.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().find(|(_, t)| t.eq_ignore_ascii_case(s)).map(|(v, _)| *v)
            }
        }
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).ok_or_else(|| {
                    let allowed: Vec<&str> = Self::ALL.iter().map(|(_, t)| *t).collect();
                    ::serde::de::Error::custom(format!(
                        "'{s}' is not a valid {}; allowed values: {}",
                        stringify!($name),
                        allowed.join(", ")
                    ))
                })
            }
        }
    };
}
