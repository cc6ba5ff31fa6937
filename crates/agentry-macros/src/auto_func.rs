//! `#[auto_func]`: generates the body of an `async fn` that asks an agent for a
//! typed, schema-checked answer.
//!
//! Accepted shape (see the `auto_func` docs in `lib.rs` for the user-facing rules):
//!
//! ```text
//! /// doc comment = the instruction
//! #[other attributes]
//! vis async fn name[<'lifetimes>](agent: &Agent, p1: T1, p2: T2, …) -> Result<Out, E>;   // or `{}`
//! ```
//!
//! Expansion (paths rooted at `::agentry` or the `crate = "…"` override):
//!
//! ```text
//! vis async fn name(agent: &Agent, p1: T1, …) -> Result<Out, E> {
//!     let agent: &::agentry::Agent = agent;
//!     let mut input = serde_json::Map::new();
//!     input.insert("p1", serde_json::to_value(&p1).map_err(|e| AgentryError::Config(..))?);
//!     …
//!     let schema = serde_json::Value::from(schemars::schema_for!(Out));
//!     let execution = agent.input(Value::Object(input)).instruct(DOC).output_schema(schema).start()?;
//!     Ok(execution.data_as::<Out>().await?)
//! }
//! ```
use proc_macro2::{TokenStream as TokenStream2, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, Block, FnArg, GenericParam, Meta, Pat, ReturnType, Signature, Token, Type,
    Visibility,
};

use crate::{doc_text, hygienic, lit_str};

/// The annotated item: an `ItemFn` whose body may be missing (`…;`).
struct AutoFn {
    attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    body: Option<Block>,
}

impl Parse for AutoFn {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        let body = if input.peek(Token![;]) {
            input.parse::<Token![;]>()?;
            None
        } else {
            Some(input.parse::<Block>()?)
        };
        Ok(Self {
            attrs,
            vis,
            sig,
            body,
        })
    }
}

fn parse_crate_option(attr: TokenStream2) -> syn::Result<syn::Path> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    let mut krate: Option<syn::Path> = None;
    for meta in &metas {
        match meta {
            Meta::NameValue(nv) if nv.path.is_ident("crate") => {
                let s = lit_str(&nv.value)?;
                let path = syn::parse_str::<syn::Path>(&s)
                    .map_err(|e| syn::Error::new(nv.value.span(), e))?;
                krate = Some(path);
            }
            Meta::Path(p) if p.is_ident("crate") => {
                return Err(syn::Error::new(
                    p.span(),
                    "`crate` needs a value: `crate = \"path::to::agentry\"`",
                ));
            }
            other => {
                return Err(syn::Error::new(
                    other.path().span(),
                    "unknown #[auto_func] option; the only option is `crate = \"path::to::agentry\"`",
                ));
            }
        }
    }
    Ok(krate.unwrap_or_else(|| syn::parse_quote!(::agentry)))
}

/// Whether `ty` is `&Agent` / `&path::Agent` (a shared reference, any lifetime).
fn is_agent_ref(ty: &Type) -> bool {
    let Type::Reference(r) = ty else { return false };
    if r.mutability.is_some() {
        return false;
    }
    let Type::Path(p) = &*r.elem else {
        return false;
    };
    p.qself.is_none()
        && p.path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Agent" && s.arguments.is_empty())
}

/// Whether the token stream mentions the identifier `name` anywhere.
fn mentions(tokens: TokenStream2, name: &syn::Ident) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Ident(i) => i == *name,
        TokenTree::Group(g) => mentions(g.stream(), name),
        _ => false,
    })
}

/// `T` of `Result<T, E>`, or the first type argument of an alias whose name ends in
/// `Result` (`io::Result<T>`, `anyhow::Result<T>`, `MyResult<T>`).
fn result_ok_type(ty: &Type) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let seg = p.path.segments.last()?;
    if !seg.ident.to_string().ends_with("Result") {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &seg.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    })
}

/// Whether `ty` contains `impl Trait` or `_` (neither can be deserialized into).
fn contains_impl_trait(ty: &Type) -> bool {
    fn walk(ts: TokenStream2) -> bool {
        ts.into_iter().any(|tt| match tt {
            // `impl` is a keyword: inside a type it always starts an `impl Trait`.
            TokenTree::Ident(i) => i == "impl",
            TokenTree::Group(g) => walk(g.stream()),
            _ => false,
        })
    }
    matches!(ty, Type::Infer(_)) || walk(ty.to_token_stream())
}

const SHAPE: &str = "expected `async fn name(agent: &Agent, ...) -> Result<T, AgentryError>`";

/// The expansion, or the errors plus a stand-in function with the same signature
/// (so call sites and imports do not add follow-up errors and warnings).
pub(crate) fn expand(attr: TokenStream2, item: TokenStream2) -> TokenStream2 {
    match try_expand(attr, item.clone()) {
        Ok(ts) => ts,
        Err(e) => {
            let errors = e.to_compile_error();
            match syn::parse2::<AutoFn>(item) {
                // A stand-in needs a nameable return type (`impl Trait` could not be inferred).
                Ok(AutoFn {
                    attrs, vis, sig, ..
                }) if !matches!(&sig.output, ReturnType::Type(_, ty) if contains_impl_trait(ty)) => {
                    quote! {
                        #errors
                        #(#attrs)*
                        #[allow(unused_variables, clippy::unreachable)]
                        #vis #sig {
                            // Never runs: the `compile_error!` above stops the build.
                            ::core::unreachable!("#[auto_func] failed to expand")
                        }
                    }
                }
                _ => errors,
            }
        }
    }
}

fn try_expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let krate = parse_crate_option(attr)?;
    let AutoFn {
        attrs,
        vis,
        mut sig,
        body,
    } = syn::parse2::<AutoFn>(item)?;

    // Collect every problem, so one compile shows them all.
    let mut errors: Vec<syn::Error> = Vec::new();

    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span(),
            "auto_func requires an async fn",
        ));
    }
    if let Some(body) = &body
        && !body.stmts.is_empty()
    {
        errors.push(syn::Error::new(
            body.span(),
            "auto_func generates the body; remove it (write `;` or `{}`)",
        ));
    }
    if let Some(v) = &sig.variadic {
        errors.push(syn::Error::new(
            v.span(),
            "auto_func functions cannot be variadic",
        ));
    }
    let instruction = doc_text(&attrs);
    if instruction.is_empty() {
        errors.push(syn::Error::new(
            sig.ident.span(),
            "auto_func uses the doc comment as the instruction; add one",
        ));
    }

    // The return type: `Result<T, E>` with a concrete `T`.
    let ok_ty = match &sig.output {
        ReturnType::Default => {
            errors.push(syn::Error::new(
                sig.paren_token.span.close(),
                "auto_func needs a return type: `-> Result<T, AgentryError>` where T: DeserializeOwned + JsonSchema",
            ));
            None
        }
        ReturnType::Type(_, ty) => match result_ok_type(ty) {
            Some(ok) => Some(ok),
            None => {
                errors.push(syn::Error::new_spanned(
                    ty,
                    "auto_func must return `Result<T, E>` where T: DeserializeOwned + JsonSchema and E: From<AgentryError>",
                ));
                None
            }
        },
    };
    if let Some(ok) = &ok_ty
        && contains_impl_trait(ok)
    {
        errors.push(syn::Error::new_spanned(
            ok,
            "auto_func needs a concrete return type with a JSON Schema; `impl Trait` cannot be deserialized",
        ));
    }

    // Generics: lifetimes are fine; type and const parameters are refused (the
    // schema is generated from the return type, which must be concrete).
    for gp in &sig.generics.params {
        match gp {
            GenericParam::Lifetime(_) => {}
            GenericParam::Type(tp) => {
                let in_output = ok_ty
                    .as_ref()
                    .is_some_and(|ok| mentions(ok.to_token_stream(), &tp.ident));
                let msg = if in_output {
                    format!(
                        "auto_func needs a concrete return type with a JSON Schema; `{}` is a type parameter",
                        tp.ident
                    )
                } else {
                    "auto_func functions cannot have type parameters; use concrete types (or `impl Serialize` arguments)".to_owned()
                };
                errors.push(syn::Error::new(tp.ident.span(), msg));
            }
            GenericParam::Const(cp) => errors.push(syn::Error::new(
                cp.ident.span(),
                "auto_func functions cannot have const parameters",
            )),
        }
    }

    // Parameters: the agent first, then the input fields.
    let mut agent_ident: Option<syn::Ident> = None;
    // (input key, parameter, span of its type for trait-bound errors)
    let mut fields: Vec<(String, syn::Ident, proc_macro2::Span)> = Vec::new();
    if sig.inputs.is_empty() {
        errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            "auto_func needs the agent as its first parameter: `agent: &Agent`",
        ));
    }
    for (index, arg) in sig.inputs.iter_mut().enumerate() {
        let pt = match arg {
            FnArg::Receiver(r) => {
                errors.push(syn::Error::new_spanned(
                    r,
                    "auto_func cannot take `self`; it generates a free function whose first parameter is the agent",
                ));
                continue;
            }
            FnArg::Typed(pt) => pt,
        };
        let ident = match &mut *pt.pat {
            Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {
                // `mut x` would only warn (the generated body never mutates it).
                pi.mutability = None;
                pi.ident.clone()
            }
            other => {
                errors.push(syn::Error::new_spanned(
                    other,
                    "auto_func parameters must be plain identifiers (their names are the keys of the input object)",
                ));
                continue;
            }
        };
        if index == 0 {
            if is_agent_ref(&pt.ty) {
                agent_ident = Some(ident);
            } else {
                errors.push(syn::Error::new_spanned(
                    &pt.ty,
                    "the first parameter of an auto_func is the agent it runs on: `agent: &Agent`",
                ));
            }
            continue;
        }
        let key = ident.to_string().trim_start_matches("r#").to_owned();
        fields.push((key, ident, pt.ty.span()));
    }

    let mut errors = errors.into_iter();
    if let Some(mut first) = errors.next() {
        for e in errors {
            first.combine(e);
        }
        return Err(first);
    }
    let (Some(agent_ident), Some(ok_ty)) = (agent_ident, ok_ty) else {
        // Unreachable: both are only missing when an error was recorded above.
        return Err(syn::Error::new(sig.span(), SHAPE));
    };

    let fn_name = sig.ident.to_string();
    let sj = quote!(#krate::__private::serde_json);
    let agent = hygienic("__agentry_agent");
    let input = hygienic("__agentry_input");
    let schema = hygienic("__agentry_schema");
    let execution = hygienic("__agentry_execution");
    let err = hygienic("__agentry_error");
    let agent_ty_span = match sig.inputs.first() {
        Some(FnArg::Typed(pt)) => pt.ty.span(),
        _ => sig.ident.span(),
    };
    let inserts = fields.iter().map(|(key, ident, ty_span)| {
        let what =
            format!("auto_func `{fn_name}`: parameter `{key}` cannot be serialized to JSON: ");
        let to_value = quote_spanned! {*ty_span=> #sj::to_value(&#ident) };
        quote! {
            #input.insert(
                ::std::string::String::from(#key),
                #to_value.map_err(|#err| {
                    #krate::AgentryError::Config(::std::format!("{}{}", #what, #err))
                })?,
            );
        }
    });
    let agent_binding = quote_spanned! {agent_ty_span=>
        let #agent: &#krate::Agent = #agent_ident;
    };
    let mutability = (!fields.is_empty()).then(|| quote!(mut));
    let ok_span = ok_ty.span();
    let schema_expr = quote_spanned! {ok_span=>
        #sj::Value::from(#krate::__private::schemars::schema_for!(#ok_ty))
    };
    let data_expr = quote_spanned! {ok_span=>
        #execution.data_as::<#ok_ty>().await?
    };

    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #agent_binding
            let #mutability #input = #sj::Map::new();
            #(#inserts)*
            let #schema = #schema_expr;
            let #execution = #agent
                .input(#sj::Value::Object(#input))
                .instruct(#instruction)
                .output_schema(#schema)
                .start()?;
            ::core::result::Result::Ok(#data_expr)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(attr: TokenStream2, item: TokenStream2) -> String {
        match try_expand(attr, item) {
            Ok(ts) => panic!("expected an error, got {ts}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn expands_bodyless_and_empty_body() {
        for item in [
            quote!(
                /// Do it.
                pub async fn f(agent: &Agent, x: u32) -> Result<Out, AgentryError>;
            ),
            quote!(
                /// Do it.
                pub async fn f(a: &agentry::Agent, x: u32) -> Result<Out, AgentryError> {}
            ),
        ] {
            let out = try_expand(quote!(), item).unwrap().to_string();
            assert!(out.contains("schema_for"), "{out}");
            assert!(out.contains("\"x\""), "{out}");
            assert!(out.contains("\"Do it.\""), "{out}");
        }
    }

    #[test]
    fn crate_override() {
        let out = try_expand(
            quote!(crate = "crate::facade"),
            quote!(
                /// Do it.
                async fn f(agent: &Agent) -> Result<Out, AgentryError>;
            ),
        )
        .unwrap()
        .to_string();
        assert!(out.contains("crate :: facade :: __private"), "{out}");
        assert!(err(quote!(bogus = 1), quote!()).contains("unknown #[auto_func] option"));
    }

    #[test]
    fn rejects_bad_shapes() {
        let e = err(
            quote!(),
            quote!(
                fn f(agent: &Agent) -> Result<Out, E>;
            ),
        );
        assert!(e.contains("async fn"), "{e}");
        let e = err(
            quote!(),
            quote!(
                /// D.
                async fn f<T>(agent: &Agent) -> Result<T, E>;
            ),
        );
        assert!(e.contains("concrete return type"), "{e}");
        let e = err(
            quote!(),
            quote!(
                /// D.
                async fn f(agent: &Agent) -> Result<impl Sized, E>;
            ),
        );
        assert!(e.contains("concrete return type"), "{e}");
        let e = err(
            quote!(),
            quote!(
                /// D.
                async fn f(agent: &mut Agent) -> Result<u8, E>;
            ),
        );
        assert!(e.contains("first parameter"), "{e}");
    }
}
