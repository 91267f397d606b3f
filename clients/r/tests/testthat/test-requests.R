collect_progress <- function(expr) {
  lines <- character()
  value <- withCallingHandlers(
    expr,
    linksight_progress = function(message) {
      lines <<- c(lines, conditionMessage(message))
      invokeRestart("muffleMessage")
    }
  )
  list(value = value, lines = lines)
}

test_that("wait reports approvals, then station progress", {
  request <- lks_submit(scientist, "SELECT count(*) FROM lung", "R client test")
  lks_approve(stewards[["steward-a"]], request, "fine")

  early <- collect_progress(tryCatch(
    lks_wait(scientist, request, timeout = 1, interval = 0.2),
    linksight_timeout = function(error) error
  ))
  for (name in c("steward-b", "steward-c")) {
    lks_approve(stewards[[name]], request)
  }
  late <- collect_progress(lks_wait(scientist, request, interval = 0.2))

  expect_s3_class(early$value, "linksight_timeout")
  expect_match(
    conditionMessage(early$value),
    sprintf("request %d is still awaiting_approval after 1 s (approved by 1 of 3 organisations; waiting for Hospital B, Hospital C); wait again with lks_wait(conn, %d) or revoke it with lks_revoke(conn, %d)", request$id, request$id, request$id),
    fixed = TRUE
  )
  expect_equal(early$value$request$state, "awaiting_approval")
  expect_equal(
    early$lines,
    sprintf("request %d: awaiting_approval, approved by 1 of 3 organisations; waiting for Hospital B, Hospital C\n", request$id)
  )
  expect_equal(late$value$state, "completed")
  expect_match(late$lines[length(late$lines)],
               "completed, approved by 3 of 3 organisations; stations: station-a completed, station-b completed, station-c completed",
               fixed = TRUE)
  expect_true(all(!duplicated(late$lines)))
})

test_that("query submits, waits and returns the result", {
  # Stewards approve in a separate R process while lks_query() waits.
  approver <- callr::r_bg(
    function(url, tokens) {
      deadline <- Sys.time() + 60
      call_hub <- function(token, method, ..., state = NULL) {
        request <- httr2::request(url)
        request <- httr2::req_url_path_append(request, ...)
        if (!is.null(state)) {
          request <- httr2::req_url_query(request, state = state)
        }
        request <- httr2::req_auth_bearer_token(request, token)
        request <- httr2::req_method(request, method)
        if (method == "POST") {
          request <- httr2::req_body_json(request, list(reason = "background approval"))
        }
        httr2::resp_body_json(httr2::req_perform(request))
      }
      repeat {
        pending <- call_hub(tokens[[1]], "GET", "requests", state = "awaiting_approval")
        if (length(pending) > 0L) {
          for (token in tokens) {
            call_hub(token, "POST", "requests", pending[[1]]$id, "approve")
          }
          return(pending[[1]]$id)
        }
        if (Sys.time() > deadline) stop("no request awaited approval within 60 s")
        Sys.sleep(0.2)
      }
    },
    args = list(
      url = hub_url,
      tokens = lapply(test_network$connection$stewards, function(s) s$token)
    )
  )
  withr::defer(approver$kill())

  result <- lks_query(
    scientist, "SELECT count(*) FROM lung GROUP BY status",
    purpose = "R client test", interval = 0.2, progress = FALSE
  )
  approver$wait(10000)

  expect_equal(approver$get_result(), attr(result, "request_id"))
  expect_identical(result$`count(*)`, as.integer(table(pooled$status)[c("1", "2")]))
})

test_that("a steward's rejection ends the wait with the reason", {
  request <- lks_submit(scientist, "SELECT mean(age) FROM lung", "R client test")
  rejected <- lks_reject(stewards[["steward-b"]], request, "outside the agreed purpose")

  error <- tryCatch(
    lks_wait(scientist, request, interval = 0.2, progress = FALSE),
    linksight_request_error = function(error) error
  )

  expect_equal(rejected$state, "rejected")
  expect_equal(error$state, "rejected")
  expect_equal(error$request$id, request$id)
  expect_equal(
    conditionMessage(error),
    sprintf("request %d was rejected by rule steward_rejection: steward 'steward-b' of 'Hospital B' rejected the request: outside the agreed purpose", request$id)
  )
})

test_that("a revoked request ends the wait", {
  request <- lks_submit(scientist, "SELECT mean(age) FROM lung", "R client test")
  revoked <- lks_revoke(scientist, request$id, "no longer needed")

  expect_equal(revoked$state, "revoked")
  expect_error(
    lks_wait(scientist, request, interval = 0.2, progress = FALSE),
    sprintf("request %d was revoked before it ran; submit it again", request$id),
    fixed = TRUE,
    class = "linksight_request_error"
  )
})

test_that("result before approval raises the hub's not_ready", {
  request <- lks_submit(scientist, "SELECT mean(age) FROM lung", "R client test")
  withr::defer(lks_revoke(scientist, request))

  expect_error(
    lks_result(scientist, request),
    sprintf("request %d is awaiting_approval; a result exists only once it is completed", request$id),
    fixed = TRUE,
    class = "linksight_not_ready"
  )
})

test_that("only the submitter may read a result", {
  request <- submit_and_approve("SELECT count(*) FROM lung")
  lks_wait(scientist, request, interval = 0.2, progress = FALSE)

  expect_error(
    lks_result(stewards[["steward-a"]], request),
    sprintf("only the submitter of request %d ('sam') or an admin may read its result", request$id),
    fixed = TRUE,
    class = "linksight_forbidden"
  )
})

test_that("an invalid query points at the offending text", {
  error <- tryCatch(
    lks_submit(scientist, "SELECT mean(agee) FROM lung", "R client test"),
    linksight_error = function(error) error
  )

  expect_s3_class(error, "linksight_invalid_query")
  expect_equal(error$status, 422L)
  expect_equal(error$detail$position, 12L)
  expect_equal(
    conditionMessage(error),
    "unknown column 'agee' in dataset 'lung' (did you mean 'age'?)\n  SELECT mean(agee) FROM lung\n              ^"
  )
})

test_that("the pointer finds the line of a query on several lines", {
  error <- tryCatch(
    lks_submit(scientist, "SELECT mean(age)\nFROM lungs", "R client test"),
    linksight_invalid_query = function(error) error
  )

  expect_match(conditionMessage(error), "\n  FROM lungs\n       \\^$")
})

test_that("requests lists the scientist's requests by state", {
  request <- lks_submit(scientist, "SELECT count(*) FROM lung", "listing test")
  withr::defer(lks_revoke(scientist, request))

  waiting <- lks_requests(scientist, state = "awaiting_approval")
  everything <- lks_requests(scientist)

  expect_equal(waiting$id, request$id)
  expect_equal(waiting$purpose, "listing test")
  expect_s3_class(waiting$created_at, "POSIXct")
  expect_true(request$id %in% everything$id)
  expect_true(all(everything$submitter == "sam"))
  expect_true(length(unique(everything$state)) > 1L)
})

test_that("a request prints its state and progress", {
  request <- lks_submit(scientist, "SELECT count(*) FROM lung", "printing test")
  withr::defer(lks_revoke(scientist, request))

  printed <- capture.output(print(request))

  expect_equal(printed[1], sprintf("<linksight request %d in lung-study: awaiting_approval>", request$id))
  expect_equal(printed[2], "query: SELECT count(*) FROM lung")
  expect_equal(printed[4], "progress: awaiting_approval, approved by 0 of 3 organisations; waiting for Hospital A, Hospital B, Hospital C")
})

test_that("wait rejects a request id that is not one", {
  expect_error(
    lks_wait(scientist, "abc"),
    "`request` must be a request returned by lks_submit() or a positive whole request id, not character \"abc\"",
    fixed = TRUE,
    class = "linksight_argument_error"
  )
  expect_error(
    lks_wait(scientist, 1, interval = -1),
    "`interval` must be a positive number of seconds, not numeric -1",
    fixed = TRUE,
    class = "linksight_argument_error"
  )
})
