//! Expansion snapshots of representative inputs (reviewed `.snap` files in
//! `snapshots/`), and checks that bad input reports every error.

use proc_macro2::TokenStream;
use quote::quote;

use super::{db_enum, entity, newtype};

fn pretty(tokens: TokenStream) -> String {
    let file: syn::File = syn::parse2(tokens).expect("expansion parses as a file");
    prettyplease::unparse(&file)
}

/// The compile errors of an expansion, in order.
fn errors(tokens: TokenStream) -> Vec<String> {
    let file: syn::File = syn::parse2(tokens).expect("expansion parses as a file");
    file.items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Macro(m)
                if m.mac
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "compile_error") =>
            {
                syn::parse2::<syn::LitStr>(m.mac.tokens.clone())
                    .ok()
                    .map(|l| l.value())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn account() {
    let out = entity::derive(quote! {
        #[derive(Entity, Clone, Debug)]
        #[persist(table = "accounts")]
        pub struct Account {
            #[persist(primary_key, auto_increment)]
            pub id: i64,
            #[persist(unique)]
            pub iban: String,
            #[persist(column = "balance")]
            pub balance_cents: i64,
            #[persist(version)]
            pub version: i64,
            #[persist(references = "Customer")]
            pub customer_id: i64,
            #[persist(json)]
            pub tags: Vec<String>,
            pub closed_at: Option<DateTime<Utc>>,
            #[persist(updated_at, default = "CURRENT_TIMESTAMP")]
            pub updated_at: DateTime<Utc>,
            #[persist(skip)]
            pub scratch: String,
        }
    });
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn composite_key() {
    let out = entity::derive(quote! {
        #[derive(Entity, Clone)]
        #[persist(rename_all = "camelCase")]
        pub(crate) struct OrderLine {
            #[persist(primary_key, references = "crate::Order")]
            order_id: i64,
            #[persist(primary_key)]
            line_no: i32,
            #[persist(index)]
            product_code: String,
            #[persist(json)]
            options: Option<serde_json::Map<String, serde_json::Value>>,
            #[persist(created_at)]
            created_at: Option<NaiveDateTime>,
            #[persist(updated_at)]
            r#type: NaiveDateTime,
        }
    });
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn relations() {
    let out = entity::derive(quote! {
        #[derive(Entity, Clone)]
        #[persist(has_many(Post, by = "user_id", on_delete = "cascade"))]
        #[persist(has_one(Profile, by = "user_id"), many_to_many(Group, through = "Membership", by = "user_id", to = "group_id"))]
        pub struct User {
            #[persist(primary_key, auto_increment)]
            pub id: i64,
            #[persist(references = "User")]
            pub invited_by: Option<i64>,
        }
    });
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn relation_errors() {
    let out = entity::derive(quote! {
        #[persist(has_many(Post), has_one(Profile, by = "user_id", through = "X", to = "y"))]
        #[persist(many_to_many(Tag, by = "post_id"), has_many(Post, by = "user_id", on_delete = "explode", via = "x"))]
        #[persist(has_many)]
        struct User {
            #[persist(primary_key)]
            id: i64,
        }
    });
    assert_eq!(
        errors(out),
        [
            "unknown on_delete value `explode`; expected one of: cascade, set_null, no_action",
            "unknown `has_many` key `via`; expected one of: by, to, through, on_delete",
            "expected `has_many(Entity, …)`, e.g. `has_many(Post, by = \"user_id\")`",
            "`has_many` needs `by = \"field\"`: the foreign-key field that references `User`",
            "`through` is only for `many_to_many`, not `has_one`",
            "`to` is only for `many_to_many`, not `has_one`",
            "`many_to_many` needs `through = \"JoinEntity\"`",
            "`many_to_many` needs `to = \"field\"`: the join entity's field that references the target",
            "a second relation to this entity: declare one relation per target and load others with `load_children_by`",
        ]
    );
}

#[test]
fn db_enum() {
    let out = db_enum::derive(quote! {
        #[derive(DbEnum, Clone, Copy, Debug, PartialEq)]
        #[persist(rename_all = "snake_case")]
        enum Status {
            Active,
            #[persist(rename = "on_hold")]
            Paused,
            ClosedByBank,
        }
    });
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn newtypes() {
    let tuple = newtype::derive(quote! {
        #[derive(Field, Clone, Copy)]
        pub struct Money(i64);
    });
    let named = newtype::derive(quote! {
        #[derive(Field, Clone)]
        #[persist(crate = "crate::storage::engine")]
        pub struct Email {
            value: String,
        }
    });
    insta::assert_snapshot!(pretty(quote!(#tuple #named)));
}

#[test]
fn db_enum_with_serde_names() {
    let out = db_enum::derive(quote! {
        #[derive(DbEnum, Serialize)]
        #[serde(deny_unknown_fields, rename_all = "SCREAMING-KEBAB-CASE")]
        #[persist(rename_all = "serde")]
        enum Status {
            OnHold,
            #[serde(alias = "x", rename = "done")]
            Finished,
            #[serde(rename(deserialize = "gone"))]
            ClosedByBank,
            #[serde(rename(serialize = "out", deserialize = "in"))]
            Out,
            #[persist(rename = "mine")]
            #[serde(rename = "theirs")]
            Mine,
        }
    });
    // The arms of `as_str`: `Self :: OnHold => "ON-HOLD" , …`.
    let text = out.to_string();
    let as_str =
        &text[text.find("fn as_str").expect("as_str")..text.find("fn from_str").expect("from_str")];
    let stored: Vec<String> = as_str
        .split("=>")
        .skip(1)
        .map(|arm| arm.split(',').next().unwrap_or("").trim().to_owned())
        .collect();
    assert_eq!(
        stored,
        [
            "\"ON-HOLD\"",
            "\"done\"",
            "\"CLOSED-BY-BANK\"",
            "\"out\"",
            "\"mine\""
        ],
        "{out}"
    );
}

#[test]
fn renamed_crate() {
    let entity = entity::derive(quote! {
        #[derive(Entity, Clone)]
        #[persist(crate = "crate::storage::engine", table = "notes")]
        #[persist(has_many(Comment, by = "note_id"))]
        pub struct Note {
            #[persist(primary_key, auto_increment)]
            pub id: i64,
            #[persist(unique)]
            pub slug: String,
            #[persist(references = "Author")]
            pub author_id: i64,
            #[persist(version)]
            pub version: i32,
            #[persist(json)]
            pub tags: Vec<String>,
            #[persist(updated_at)]
            pub updated_at: DateTime<Utc>,
        }
    });
    let db_enum = db_enum::derive(quote! {
        #[derive(DbEnum, Clone, Copy)]
        #[persist(rename_all = "snake_case", crate = "::facade::persist")]
        pub enum Mood {
            Calm,
            NotCalm,
        }
    });
    let out = format!("{}\n{}", pretty(entity), pretty(db_enum));
    // Every path into persist-core goes through the chosen root.
    assert!(!out.contains("persist_core"), "{out}");
    insta::assert_snapshot!(out);

    // So do the stubs emitted beside errors.
    let stub = pretty(entity::derive(quote! {
        #[persist(crate = "engine")]
        struct NoKey {
            #[persist(unique)]
            email: String,
        }
    }));
    assert!(
        stub.contains("impl engine::__private::Entity for NoKey"),
        "{stub}"
    );
    assert!(!stub.contains("persist_core"), "{stub}");
}

#[test]
fn crate_path_errors() {
    let out = entity::derive(quote! {
        #[persist(crate = "", crate = "not a path", crate = "engine::<T>", crate = "engine::")]
        #[persist(crate = persist_core, crate)]
        #[persist(crate = "::persist_core", crate = "crate::engine")]
        struct Note {
            #[persist(primary_key)]
            id: i64,
        }
    });
    const NOT_A_PATH: &str = "`crate` expects a path to persist-core, e.g. `crate = \"::persist_core\"` or `crate = \"crate::storage::engine\"`";
    assert_eq!(
        errors(out),
        [
            NOT_A_PATH,
            NOT_A_PATH,
            NOT_A_PATH,
            NOT_A_PATH,
            "expected a string: `crate = \"...\"`",
            "expected `crate = \"...\"`",
            "duplicate persist attribute `crate`",
        ]
    );
    let out = db_enum::derive(quote! {
        #[persist(crate = "1up", crate = "::persist_core")]
        #[persist(crate = "crate::engine")]
        enum Mood {
            Calm,
        }
    });
    assert_eq!(
        errors(out),
        [NOT_A_PATH, "duplicate persist attribute `crate`"]
    );
}

#[test]
fn every_entity_error_at_once() {
    let out = entity::derive(quote! {
        #[persist(table = "", nme = "x", rename_all = "Title Case")]
        struct Bad {
            #[persist(column = "a", column = "b")]
            id: Option<i64>,
            #[persist(version)]
            v1: String,
            #[persist(version, json)]
            v2: i64,
            #[persist(auto_increment)]
            n: String,
            #[persist(skip, unique, colum = "x")]
            s: String,
        }
    });
    assert_eq!(
        errors(out),
        [
            "`table` must not be empty",
            "unknown persist attribute `nme`; expected one of: table, rename_all, has_many, has_one, many_to_many, cache, hooks, audit, crate",
            "unknown rename_all value `Title Case`; expected one of: snake_case, camelCase, PascalCase, SCREAMING_SNAKE_CASE, kebab-case, SCREAMING-KEBAB-CASE, lowercase, UPPERCASE",
            "duplicate persist attribute `column`",
            "unknown persist attribute `colum`; expected one of: primary_key, auto_increment, column, unique, unique_live, index, references, version, json, skip, default, created_at, updated_at, soft_delete",
            "#[derive(Entity)] needs a primary key: mark a field #[persist(primary_key)]",
            "`version` needs an integer field (one of: i16, i32, i64, u8, u16, u32)",
            "`json` cannot be combined with `version`",
            "only one field can be `version`",
            "`auto_increment` needs `primary_key` on the same field",
            "`auto_increment` needs an integer field (one of: i16, i32, i64, u16, u32, u64)",
            "`skip` cannot be combined with `unique`",
        ]
    );
}

#[test]
fn key_errors() {
    let out = entity::derive(quote! {
        struct Keys {
            #[persist(primary_key, auto_increment)]
            a: i64,
            #[persist(primary_key)]
            b: Option<i64>,
            #[persist(primary_key, json)]
            c: Vec<i64>,
            #[persist(column = "a")]
            d: i64,
        }
    });
    assert_eq!(
        errors(out),
        [
            "`auto_increment` cannot be used with a composite primary key",
            "a primary key field cannot be an `Option`",
            "`json` cannot be combined with `primary_key`",
            "column `a` is already used by field `a`",
        ]
    );
}

#[test]
fn shape_errors() {
    const SHAPE: &str = "#[derive(Entity)] supports only structs with named fields and no generics";
    for input in [
        quote!(
            enum E {
                A,
            }
        ),
        quote!(
            struct T(i64);
        ),
        quote!(
            struct U;
        ),
        quote!(
            struct G<T> {
                #[persist(primary_key)]
                id: T,
            }
        ),
        quote!(
            struct L<'a> {
                #[persist(primary_key)]
                id: &'a str,
            }
        ),
    ] {
        assert_eq!(errors(entity::derive(input)), [SHAPE]);
    }
}

#[test]
fn enum_errors() {
    let out = db_enum::derive(quote! {
        #[persist(rename_all = "snake_case", table = "x")]
        enum E {
            A(i32),
            #[persist(rename = "a")]
            B,
            C { x: i32 },
        }
    });
    assert_eq!(
        errors(out),
        [
            "unknown persist attribute `table`; expected one of: rename_all, crate",
            "#[derive(DbEnum)] supports only unit variants (no fields)",
            "#[derive(DbEnum)] supports only unit variants (no fields)",
            "variant `A` is already stored as `a`",
        ]
    );
    assert_eq!(
        errors(db_enum::derive(quote!(
            struct S;
        ))),
        ["#[derive(DbEnum)] supports only enums with unit variants and no generics"]
    );
}

#[test]
fn stub_after_errors_keeps_the_items() {
    let out = pretty(entity::derive(quote! {
        pub struct NoKey {
            #[persist(unique)]
            email: String,
        }
    }));
    assert!(
        out.contains("impl ::persist_core::__private::Entity for NoKey"),
        "{out}"
    );
    assert!(out.contains("pub const EMAIL"), "{out}");
    assert!(out.contains("pub async fn find_by_email"), "{out}");
    assert!(out.contains("pub struct NoKeyRepo"), "{out}");
}
