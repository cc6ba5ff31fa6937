//! Procedural macros for Agentry: `#[action]` (below) and [`macro@auto_func`], which
//! generates the body of an `async fn` that asks an agent for a typed answer.
//!
//! `#[action]` turns an `async fn` into an action: it keeps the function as written
//! and generates
//!
//! - `<Name>Input`, a struct of the parameters deriving `serde::Deserialize` and
//!   `schemars::JsonSchema` (doc comments become descriptions; `Option<T>` parameters and
//!   parameters marked `#[action(default)]` / `#[action(default = expr)]` are optional);
//! - `<Name>`, a unit struct implementing `agentry_actions::Action` whose `call` runs
//!   the function. `<Name>` is the function name in CamelCase unless `name = "..."` is given.
//!
//! A parameter whose type is `ActionContext` receives the call's context and is not
//! part of the input. The function may return `Result<T, E>` (with
//! `E: Into<ActionFailure>`) or a plain `T`; `T` must implement `serde::Serialize`.
//!
//! Options: `id = "..."` (default: the function name), `name = "..."`,
//! `description = "..."` (default: the doc comment, which is then required),
//! `side_effect = "read" | "write" | "exec"`, `approval_required`, `sandbox_required`,
//! `sandboxed`, `hidden` (not offered to the model), `replay_safe = bool`,
//! `tags("a", "b")`, `host_only("key")`, and `crate = "path"` when the runtime is
//! reached through another path than `::agentry_actions` (e.g. a facade re-export).
//!
//! ```
//! use agentry_actions::{action, Action, ActionFailure, ActionRegistry};
//!
//! /// Adds two integers.
//! #[action(tags("math"))]
//! async fn add(
//!     /// The first addend.
//!     a: i64,
//!     /// The second addend (default 1).
//!     #[action(default = 1)]
//!     b: i64,
//! ) -> Result<i64, ActionFailure> {
//!     Ok(a + b)
//! }
//!
//! let mut registry = ActionRegistry::new();
//! registry.register(Add).unwrap();
//! assert_eq!(Add.spec().input_schema["required"], serde_json::json!(["a"]));
//! ```
#![deny(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, FnArg, ItemFn, Lit, Meta, Pat, ReturnType, Token, Type};

mod auto_func;

/// Turns an `async fn` into an action. See the crate documentation.
#[proc_macro_attribute]
pub fn action(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Generates the body of an `async fn` that asks an agent for a typed answer.
///
/// ```
/// use agentry::{Agent, AgentryError, Runtime, auto_func};
/// use schemars::JsonSchema;
/// use serde::Deserialize;
///
/// #[derive(Debug, Deserialize, JsonSchema)]
/// struct Summary {
///     title: String,
///     bullets: Vec<String>,
/// }
///
/// /// Summarize the text as a title and at most `max_bullets` bullet points.
/// #[auto_func]
/// async fn summarize(agent: &Agent, text: String, max_bullets: u32) -> Result<Summary, AgentryError>;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), AgentryError> {
/// let runtime = Runtime::builder().test_model().build()?;
/// let agent = runtime.agent("summarizer");
/// let summary: Summary = summarize(&agent, "Rust is a language.".into(), 3).await?;
/// assert!(!summary.title.is_empty());
/// # Ok(())
/// # }
/// ```
///
/// The function runs one execution on the agent: its **input** is a JSON object of
/// the parameters after the agent (`{"text": ..., "max_bullets": ...}`, each value
/// serialized with `serde_json`), its **instruction** is the doc comment, and its
/// **output contract** is the JSON Schema of the success type
/// (`schemars::schema_for!(T)`); the answer is read with `Execution::data_as::<T>()`.
///
/// Rules, each checked with an error pointing at the offending part:
///
/// - the function is `async` and has a doc comment (the instruction);
/// - it has no body (`...;`) or an empty one (`{}`): the macro writes it;
/// - the first parameter is the agent, a shared reference `&Agent` (any path
///   ending in `Agent`, any name and lifetime); it is not part of the input;
/// - the other parameters are plain identifiers (their names are the input's keys;
///   `r#` is dropped) whose types implement `serde::Serialize`; no `self`;
/// - the return type is `Result<T, E>` (or an alias whose name ends in `Result` and
///   whose first type argument is `T`, such as `anyhow::Result<T>`) with `T: DeserializeOwned + JsonSchema` and `E: From<AgentryError>` (typically
///   `AgentryError`); an input that fails to serialize is reported as
///   `AgentryError::Config`;
/// - lifetime parameters are allowed; type and const parameters are not: the output
///   schema is generated from `T` at compile time, so `T` must be a concrete type.
///   `impl Serialize` arguments are fine.
///
/// Visibility, the name, the signature and all attributes (including the doc
/// comment, which stays the function's documentation) are kept.
///
/// The generated code reaches the runtime through `::agentry` (and `serde_json` /
/// `schemars` through `::agentry::__private`, so depending on `agentry` is
/// enough); pass `#[auto_func(crate = "path::to::agentry")]` when `agentry` is
/// reached through another path.
#[proc_macro_attribute]
pub fn auto_func(attr: TokenStream, item: TokenStream) -> TokenStream {
    auto_func::expand(attr.into(), item.into()).into()
}

#[derive(Default)]
struct Options {
    id: Option<String>,
    name: Option<String>,
    description: Option<String>,
    side_effect: Option<String>,
    approval_required: bool,
    sandbox_required: bool,
    sandboxed: bool,
    hidden: bool,
    replay_safe: Option<bool>,
    tags: Vec<String>,
    host_only: Vec<String>,
    krate: Option<syn::Path>,
}

fn lit_str(e: &Expr) -> syn::Result<String> {
    match e {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.value()),
        _ => Err(syn::Error::new(e.span(), "expected a string literal")),
    }
}

fn lit_bool(e: &Expr) -> syn::Result<bool> {
    match e {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b.value),
        _ => Err(syn::Error::new(e.span(), "expected `true` or `false`")),
    }
}

fn str_list(meta: &Meta) -> syn::Result<Vec<String>> {
    match meta {
        Meta::List(l) => {
            let items =
                Punctuated::<syn::LitStr, Token![,]>::parse_terminated.parse2(l.tokens.clone())?;
            Ok(items.iter().map(|s| s.value()).collect())
        }
        Meta::NameValue(nv) => match &nv.value {
            Expr::Array(a) => a.elems.iter().map(lit_str).collect(),
            other => Err(syn::Error::new(other.span(), "expected a list of strings")),
        },
        Meta::Path(p) => Err(syn::Error::new(p.span(), "expected a list of strings")),
    }
}

fn flag(meta: &Meta) -> syn::Result<bool> {
    match meta {
        Meta::Path(_) => Ok(true),
        Meta::NameValue(nv) => lit_bool(&nv.value),
        Meta::List(l) => Err(syn::Error::new(
            l.span(),
            "expected a flag or `= true/false`",
        )),
    }
}

fn parse_options(attr: TokenStream2) -> syn::Result<Options> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr)?;
    let mut o = Options::default();
    for meta in &metas {
        let key = meta
            .path()
            .get_ident()
            .map(|i| i.to_string())
            .or_else(|| {
                (meta.path().segments.len() == 1).then(|| meta.path().segments[0].ident.to_string())
            })
            .unwrap_or_default();
        let value = || match meta {
            Meta::NameValue(nv) => Ok(&nv.value),
            _ => Err(syn::Error::new(
                meta.span(),
                format!("`{key}` needs a value: `{key} = ...`"),
            )),
        };
        match key.as_str() {
            "id" => o.id = Some(lit_str(value()?)?),
            "name" => o.name = Some(lit_str(value()?)?),
            "description" => o.description = Some(lit_str(value()?)?),
            "side_effect" => {
                let v = lit_str(value()?)?;
                if !matches!(v.as_str(), "read" | "write" | "exec") {
                    return Err(syn::Error::new(
                        meta.span(),
                        "side_effect must be \"read\", \"write\" or \"exec\"",
                    ));
                }
                o.side_effect = Some(v);
            }
            "approval_required" => o.approval_required = flag(meta)?,
            "sandbox_required" => o.sandbox_required = flag(meta)?,
            "sandboxed" => o.sandboxed = flag(meta)?,
            "hidden" => o.hidden = flag(meta)?,
            "replay_safe" => o.replay_safe = Some(lit_bool(value()?)?),
            "tags" => o.tags = str_list(meta)?,
            "host_only" | "host_only_input_keys" => o.host_only = str_list(meta)?,
            "crate" | "crate_path" => o.krate = Some(syn::parse_str(&lit_str(value()?)?)?),
            _ => {
                return Err(syn::Error::new(
                    meta.path().span(),
                    format!(
                        "unknown #[action] option `{key}`; expected one of: id, name, description, side_effect, \
                         approval_required, sandbox_required, sandboxed, hidden, replay_safe, tags, host_only, crate"
                    ),
                ));
            }
        }
    }
    Ok(o)
}

fn doc_text(attrs: &[Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => lit_str(&nv.value).ok(),
            _ => None,
        })
        .map(|l| l.strip_prefix(' ').unwrap_or(&l).trim_end().to_owned())
        .collect();
    lines.join("\n").trim().to_owned()
}

fn camel(s: &str) -> String {
    s.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

fn last_segment_is(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == name),
        Type::Reference(r) => last_segment_is(&r.elem, name),
        _ => false,
    }
}

enum ParamDefault {
    None,
    Default,
    Expr(Expr),
}

fn take_param_options(attrs: &mut Vec<Attribute>) -> syn::Result<ParamDefault> {
    let mut out = ParamDefault::None;
    let mut keep = Vec::with_capacity(attrs.len());
    for a in attrs.drain(..) {
        if a.path().is_ident("action") {
            let metas = a.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)?;
            for m in metas {
                match &m {
                    Meta::Path(p) if p.is_ident("default") => out = ParamDefault::Default,
                    Meta::NameValue(nv) if nv.path.is_ident("default") => {
                        out = ParamDefault::Expr(nv.value.clone())
                    }
                    other => {
                        return Err(syn::Error::new(
                            other.span(),
                            "unknown parameter option; expected `default` or `default = <expr>`",
                        ));
                    }
                }
            }
        } else {
            keep.push(a);
        }
    }
    *attrs = keep;
    Ok(out)
}

fn expand(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let opts = parse_options(attr)?;
    let mut func: ItemFn = syn::parse2(item)?;
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            "#[action] needs an `async fn`",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "#[action] functions cannot be generic",
        ));
    }
    if sig.variadic.is_some() {
        return Err(syn::Error::new(
            sig.span(),
            "#[action] functions cannot be variadic",
        ));
    }
    let krate: syn::Path = opts
        .krate
        .clone()
        .unwrap_or_else(|| syn::parse_quote!(::agentry_actions));
    let krate_str = quote!(#krate).to_string().replace(' ', "");
    let serde_path = format!("{krate_str}::__private::serde");
    let schemars_path = format!("{krate_str}::__private::schemars");

    let fn_name = sig.ident.clone();
    let vis = func.vis.clone();
    let id = opts
        .id
        .clone()
        .unwrap_or_else(|| fn_name.to_string().trim_start_matches("r#").to_owned());
    let description = match &opts.description {
        Some(d) => d.clone(),
        None => {
            let d = doc_text(&func.attrs);
            if d.is_empty() {
                return Err(syn::Error::new(
                    fn_name.span(),
                    "#[action] needs a description: add a doc comment or `description = \"...\"`",
                ));
            }
            d
        }
    };
    let struct_name = format_ident!(
        "{}",
        opts.name
            .clone()
            .unwrap_or_else(|| camel(&fn_name.to_string()))
    );
    let input_name = format_ident!("{}Input", struct_name);

    let mut fields = Vec::new();
    let mut field_names = Vec::new();
    let mut call_args = Vec::new();
    let mut default_fns = Vec::new();
    let ctx_ident = hygienic("__agentry_ctx");
    for arg in func.sig.inputs.iter_mut() {
        let FnArg::Typed(pt) = arg else {
            return Err(syn::Error::new(
                arg.span(),
                "#[action] functions cannot take `self`",
            ));
        };
        let Pat::Ident(pi) = &*pt.pat else {
            return Err(syn::Error::new(
                pt.pat.span(),
                "#[action] parameters must be plain identifiers",
            ));
        };
        let ident = pi.ident.clone();
        let ty = (*pt.ty).clone();
        let default = take_param_options(&mut pt.attrs)?;
        if last_segment_is(&ty, "ActionContext") {
            call_args.push(quote!(#ctx_ident));
            pt.attrs.retain(|a| !a.path().is_ident("doc"));
            continue;
        }
        let docs: Vec<&Attribute> = pt
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("doc"))
            .collect();
        let serde_default = match default {
            ParamDefault::None => quote!(),
            ParamDefault::Default => quote!(#[serde(default)]),
            ParamDefault::Expr(e) => {
                let f = format_ident!("__{}_default_{}", fn_name, ident);
                let fs = f.to_string();
                default_fns.push(quote! {
                    #[doc(hidden)]
                    #[allow(non_snake_case)]
                    fn #f() -> #ty { #e }
                });
                quote!(#[serde(default = #fs)])
            }
        };
        fields.push(quote! {
            #(#docs)*
            #serde_default
            pub #ident: #ty
        });
        field_names.push(ident.clone());
        call_args.push(quote!(#ident));
        pt.attrs.retain(|a| !a.path().is_ident("doc"));
    }

    let (output_ty, call_expr) = match &func.sig.output {
        ReturnType::Default => (
            quote!(()),
            quote!({ #fn_name(#(#call_args),*).await; Ok(()) }),
        ),
        ReturnType::Type(_, ty) => match result_ok_type(ty) {
            Some(ok) => (
                quote!(#ok),
                quote!(#krate::__private::into_result(#fn_name(#(#call_args),*).await)),
            ),
            None => (quote!(#ty), quote!(Ok(#fn_name(#(#call_args),*).await))),
        },
    };

    let side_effect = match opts.side_effect.as_deref() {
        Some("write") => quote!(#krate::SideEffect::Write),
        Some("exec") => quote!(#krate::SideEffect::Exec),
        _ => quote!(#krate::SideEffect::Read),
    };
    let mut extra = Vec::new();
    if opts.approval_required {
        extra.push(quote!(
            fn approval_required(&self) -> bool {
                true
            }
        ));
    }
    if opts.sandbox_required {
        extra.push(quote!(
            fn sandbox_required(&self) -> bool {
                true
            }
        ));
    }
    if opts.sandboxed {
        extra.push(quote!(
            fn sandboxed(&self) -> bool {
                true
            }
        ));
    }
    if opts.hidden {
        extra.push(quote!(
            fn expose_to_model(&self) -> bool {
                false
            }
        ));
    }
    if let Some(r) = opts.replay_safe {
        extra.push(quote!(fn replay_safe(&self) -> bool { #r }));
    }
    if !opts.tags.is_empty() {
        let t = &opts.tags;
        extra.push(quote!(
            fn tags(&self) -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![#(::std::string::String::from(#t)),*]
            }
        ));
    }
    if !opts.host_only.is_empty() {
        let h = &opts.host_only;
        extra.push(quote!(
            fn host_only_input_keys(&self) -> ::std::vec::Vec<::std::string::String> {
                ::std::vec![#(::std::string::String::from(#h)),*]
            }
        ));
    }
    let input_doc = format!("Input of the `{id}` action (generated by `#[action]`).");
    let struct_doc = format!("The `{id}` action (generated by `#[action]` from `{fn_name}`).");

    Ok(quote! {
        #func

        #(#default_fns)*

        #[doc = #input_doc]
        #[allow(missing_docs)]
        #[derive(#krate::__private::serde::Deserialize, #krate::__private::schemars::JsonSchema)]
        #[serde(crate = #serde_path)]
        #[schemars(crate = #schemars_path)]
        #vis struct #input_name {
            #(#fields,)*
        }

        #[doc = #struct_doc]
        #[derive(Debug, Clone, Copy, Default)]
        #vis struct #struct_name;

        impl #krate::Action for #struct_name {
            type Input = #input_name;
            type Output = #output_ty;

            fn id(&self) -> &str { #id }
            fn description(&self) -> &str { #description }
            fn side_effect(&self) -> #krate::SideEffect { #side_effect }
            #(#extra)*

            fn call(
                &self,
                #ctx_ident: #krate::ActionContext,
                input: Self::Input,
            ) -> impl ::core::future::Future<Output = ::core::result::Result<Self::Output, #krate::ActionFailure>> + ::core::marker::Send {
                async move {
                    let _ = &#ctx_ident;
                    let #input_name { #(#field_names),* } = input;
                    #call_expr
                }
            }
        }
    })
}

/// A hygienic identifier: user code cannot name (or clash with) it.
fn hygienic(s: &str) -> syn::Ident {
    syn::Ident::new(s, Span::mixed_site())
}

/// `T` when `ty` is `Result<T, _>` or an alias like `io::Result<T>` (any path ending
/// in `Result` with type arguments).
fn result_ok_type(ty: &Type) -> Option<Type> {
    let Type::Path(p) = ty else { return None };
    let seg = p.path.segments.last()?;
    if seg.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &seg.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    });
    types.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case() {
        assert_eq!(camel("read_file"), "ReadFile");
        assert_eq!(camel("add"), "Add");
        assert_eq!(camel("__x__y"), "XY");
    }

    #[test]
    fn result_detection() {
        let t: Type = syn::parse_quote!(Result<i64, ActionFailure>);
        assert!(result_ok_type(&t).is_some());
        let t: Type = syn::parse_quote!(std::io::Result<i64>);
        assert!(result_ok_type(&t).is_some());
        let t: Type = syn::parse_quote!(i64);
        assert!(result_ok_type(&t).is_none());
    }

    #[test]
    fn options_parse_and_reject_unknown() {
        let o = parse_options(quote!(
            id = "x",
            side_effect = "write",
            approval_required,
            tags("a", "b")
        ))
        .unwrap();
        assert_eq!(o.id.as_deref(), Some("x"));
        assert!(o.approval_required);
        assert_eq!(o.tags, vec!["a", "b"]);
        assert!(parse_options(quote!(bogus = 1)).is_err());
        assert!(parse_options(quote!(side_effect = "delete")).is_err());
    }
}
