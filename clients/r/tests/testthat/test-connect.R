test_that("connect reads URL and token from the environment", {
  conn <- withr::with_envvar(
    c(
      LINKSIGHT_HUB_URL = hub_url,
      LINKSIGHT_TOKEN = test_network$connection$scientist$token
    ),
    lks_connect()
  )

  expect_s3_class(conn, "linksight_connection")
  expect_equal(conn$user, test_network$connection$scientist$name)
  expect_equal(conn$organisation, "Research Institute")
  expect_equal(conn$roles, "scientist")
  expect_match(conn$version, "^[0-9]+\\.[0-9]+")
})

test_that("connect strips a trailing slash from the URL", {
  conn <- lks_connect(paste0(hub_url, "/"), test_network$connection$scientist$token)

  expect_equal(conn$url, hub_url)
})

test_that("connect without URL names the variable", {
  withr::local_envvar(LINKSIGHT_HUB_URL = NA)

  expect_error(
    lks_connect(token = "token"),
    "set the environment variable LINKSIGHT_HUB_URL",
    class = "linksight_argument_error"
  )
})

test_that("connect without token names the variable", {
  withr::local_envvar(LINKSIGHT_TOKEN = NA)

  expect_error(
    lks_connect(hub_url),
    "set the environment variable LINKSIGHT_TOKEN",
    class = "linksight_argument_error"
  )
})

test_that("connect rejects a URL without scheme", {
  expect_error(
    lks_connect("127.0.0.1:8700", "token"),
    "invalid hub URL \"127.0.0.1:8700\": it must start with http:// or https://",
    fixed = TRUE,
    class = "linksight_argument_error"
  )
})

test_that("connect rejects a non-positive timeout", {
  expect_error(
    lks_connect(hub_url, "token", timeout = 0),
    "`timeout` must be a positive number of seconds, not numeric 0",
    fixed = TRUE,
    class = "linksight_argument_error"
  )
})

test_that("connect with an invalid token raises the hub's error", {
  error <- tryCatch(
    lks_connect(hub_url, "not-a-token"),
    linksight_error = function(error) error
  )

  expect_s3_class(error, "linksight_unauthenticated")
  expect_s3_class(error, "linksight_http_error")
  expect_equal(error$status, 401L)
  expect_equal(error$code, "unauthenticated")
  expect_match(conditionMessage(error), "^invalid token: .*ask the hub admin")
})

test_that("connect to a closed port raises a connection error", {
  # Nothing listens on port 1 of the loopback address.
  expect_error(
    lks_connect("http://127.0.0.1:1", "token"),
    "could not reach the hub at http://127.0.0.1:1 (GET /health)",
    fixed = TRUE,
    class = "linksight_connection_error"
  )
})

test_that("printing a connection hides the token", {
  token <- test_network$connection$scientist$token

  printed <- c(capture.output(print(scientist)), capture.output(str(scientist)))

  expect_match(printed[1], paste0("linksight connection to ", hub_url), fixed = TRUE)
  expect_match(printed[2], "user: sam of Research Institute; roles: scientist",
               fixed = TRUE)
  expect_false(any(grepl(token, printed, fixed = TRUE)))
})
