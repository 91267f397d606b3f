# Conversion of the hub's JSON, parsed into nested lists, to data frames.
# JSON null becomes NA; a list field becomes a list column.

# `fields` maps each column name to a prototype: character(), integer(),
# double(), logical(), list() or a POSIXct for timestamps.
records_frame <- function(records, fields) {
  columns <- lapply(names(fields), function(name) {
    prototype <- fields[[name]]
    values <- lapply(records, function(record) record[[name]])
    if (is.list(prototype)) {
      return(I(lapply(values, unlist)))
    }
    if (inherits(prototype, "POSIXct")) {
      return(parse_time(vapply(values, scalar_or_na, character(1), NA_character_)))
    }
    vapply(values, scalar_or_na, prototype[NA_integer_], prototype[NA_integer_])
  })
  names(columns) <- names(fields)
  frame <- as.data.frame(
    columns,
    stringsAsFactors = FALSE,
    check.names = FALSE,
    optional = TRUE
  )
  rownames(frame) <- NULL
  frame
}

scalar_or_na <- function(value, missing) {
  if (is.null(value) || length(value) == 0L) {
    return(missing)
  }
  switch(
    typeof(missing),
    character = as.character(value),
    integer = as.integer(value),
    double = as.double(value),
    logical = as.logical(value)
  )
}

# The hub writes times as ISO 8601 in UTC, such as 2026-12-04T17:21:23.547083Z.
parse_time <- function(text) {
  as.POSIXct(text, format = "%Y-%m-%dT%H:%M:%OSZ", tz = "UTC")
}

strings <- function(values) {
  as.character(unlist(values))
}
