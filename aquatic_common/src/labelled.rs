//! Enums whose variants are the values of a metric label (`reason`,
//! `client`): [`labelled!`](macro@crate::labelled) writes the enum, `ALL` (every variant, in
//! discriminant order, so `variant as usize` indexes arrays of counters)
//! and `label()`, from one list of `Variant => "label"` lines.

/// `labelled! { /// doc
///     pub enum Reason { /// doc
///         Variant => "label", ... } }`
#[macro_export]
macro_rules! labelled {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident => $label:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            /// Every variant, in discriminant order.
            pub const ALL: [$name; [$($label),+].len()] = [$($name::$variant),+];

            /// The label value.
            pub fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::labelled! {
        /// A test enum.
        pub enum Colour {
            /// The first.
            Red => "red",
            Green => "green",
        }
    }

    #[test]
    fn all_in_order_with_labels() {
        assert_eq!(Colour::ALL, [Colour::Red, Colour::Green]);
        for (i, c) in Colour::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
        assert_eq!(Colour::Green.label(), "green");
    }
}
