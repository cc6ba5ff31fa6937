mod sqlite {
    agentry_workspace::conformance_tests!(crate::common::sqlite_factory);
}

mod postgres {
    agentry_workspace::conformance_tests!(crate::common::pg_factory);
}
