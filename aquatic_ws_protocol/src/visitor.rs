//! The boilerplate of a hand-written `Deserialize` through a visitor.

/// `impl Deserialize` for `$type` (a raw type, borrowing from the input when
/// written `Name<'a>`): `$method` (`deserialize_any`, or what else the type
/// expects) with a visitor that has the given `visit_*` methods.
macro_rules! deserialize_with_visitor {
    ($type:ident<'a>, $method:ident, $expecting:literal, { $($visit:tt)* }) => {
        impl<'de: 'a, 'a> ::serde::Deserialize<'de> for $type<'a> {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V<'a>(::std::marker::PhantomData<&'a ()>);
                impl<'de: 'a, 'a> ::serde::de::Visitor<'de> for V<'a> {
                    type Value = $type<'a>;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                        f.write_str($expecting)
                    }
                    $($visit)*
                }
                deserializer.$method(V(::std::marker::PhantomData))
            }
        }
    };
    ($type:ident, $method:ident, $expecting:literal, { $($visit:tt)* }) => {
        impl<'de> ::serde::Deserialize<'de> for $type {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> ::serde::de::Visitor<'de> for V {
                    type Value = $type;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter) -> ::std::fmt::Result {
                        f.write_str($expecting)
                    }
                    $($visit)*
                }
                deserializer.$method(V)
            }
        }
    };
}
