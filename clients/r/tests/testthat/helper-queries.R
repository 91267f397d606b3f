# Helpers that run a query through the whole flow: the scientist submits,
# each steward approves, and the stations compute under MPC.

submit_and_approve <- function(query, purpose = "R client test") {
  request <- lks_submit(scientist, query, purpose)
  for (steward in stewards) {
    lks_approve(steward, request, "approved by the R client tests")
  }
  request
}

run_query <- function(query) {
  request <- submit_and_approve(query)
  lks_wait(scientist, request, timeout = 120, interval = 0.2, progress = FALSE)
  lks_result(scientist, request)
}

# The hub's reply for a result, read without the package, with `result`
# replaced by the document opened from the first station's sealed copy, to
# check the package's conversion against it. `sealed` keeps the reply's
# result as the hub relayed it.
raw_result <- function(request_id) {
  request <- httr2::request(hub_url)
  request <- httr2::req_url_path_append(request, "requests", request_id, "result")
  request <- httr2::req_auth_bearer_token(
    request, test_network$connection$scientist$token
  )
  reply <- httr2::resp_body_json(httr2::req_perform(request), simplifyVector = FALSE)
  key <- jsonlite::base64_dec(readLines(scientist$result_key, warn = FALSE))
  sealed <- jsonlite::base64_dec(reply$result$ciphertexts[[1]])
  reply$sealed <- reply$result
  reply$result <- jsonlite::parse_json(
    rawToChar(sodium::simple_decrypt(sealed, key)),
    simplifyVector = FALSE
  )
  reply
}

# Append a result to the file named by LINKSIGHT_R_RESULTS, one JSON object
# per line, so that the Python test suite can compare the R client's numbers
# with pandas on the pooled data. Doubles keep 15 significant digits.
record_result <- function(name, result) {
  path <- Sys.getenv("LINKSIGHT_R_RESULTS")
  if (!nzchar(path)) {
    return(invisible(NULL))
  }
  line <- jsonlite::toJSON(
    list(
      name = name,
      query = attr(result, "query"),
      request_id = attr(result, "request_id"),
      status = attr(result, "status"),
      group_by = I(attr(result, "group_by")),
      values = as.data.frame(result),
      n = attr(result, "n")
    ),
    auto_unbox = TRUE,
    digits = NA,
    dataframe = "rows",
    na = "null"
  )
  cat(line, "\n", file = path, sep = "", append = TRUE)
}
