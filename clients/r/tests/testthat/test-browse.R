test_that("collaborations lists the scientist's collaboration", {
  collaborations <- lks_collaborations(scientist)

  expect_equal(collaborations$name, "lung-study")
  expect_equal(
    collaborations$members,
    "Hospital A, Hospital B, Hospital C, Research Institute"
  )
})

test_that("collaboration defaults to the only one", {
  detail <- lks_collaboration(scientist)

  expect_equal(detail$name, collaboration)
})

test_that("collaboration shows rules, stations and datasets", {
  detail <- lks_collaboration(scientist, collaboration)

  expect_s3_class(detail, "linksight_collaboration")
  expect_equal(detail$rules$min_count, 10L)
  expect_equal(detail$stations$name, c("station-a", "station-b", "station-c"))
  expect_s3_class(detail$stations$last_seen, "POSIXct")
  expect_false(anyNA(detail$stations$last_seen))
  expect_equal(detail$datasets$name, "lung")
  expect_output(print(detail), "min_count = 10")
})

test_that("datasets lists lung with its stations", {
  datasets <- lks_datasets(scientist, collaboration)

  expect_equal(datasets$name, "lung")
  expect_equal(datasets$description, "NCCTG advanced lung cancer survival")
  expect_equal(datasets$columns, ncol(pooled))
  expect_equal(datasets$stations, "station-a, station-b, station-c")
})

test_that("schema describes every column of the data", {
  schema <- lks_schema(scientist, "lung")
  sex <- schema[schema$name == "sex", ]
  age <- schema[schema$name == "age", ]

  expect_equal(schema$name, names(pooled))
  expect_equal(attr(schema, "dataset"), "lung")
  expect_equal(sex$type, "categorical")
  expect_equal(sex$levels[[1]], c(1L, 2L))
  expect_false(sex$nullable)
  expect_equal(age$type, "integer")
  expect_equal(age$min, 18)
  expect_equal(age$max, 110)
})

test_that("unknown collaboration raises the hub's not_found", {
  expect_error(
    lks_datasets(scientist, "no-such-study"),
    "collaboration 'no-such-study' not found; `linksight collaborations` lists",
    fixed = TRUE,
    class = "linksight_not_found"
  )
})

test_that("unknown dataset lists the available ones", {
  expect_error(
    lks_schema(scientist, "lungs"),
    "dataset \"lungs\" not found in collaboration \"lung-study\"; its datasets are: lung",
    fixed = TRUE,
    class = "linksight_argument_error"
  )
})

test_that("a collaboration name that is not a string is an argument error", {
  expect_error(
    lks_datasets(scientist, 42),
    "`collaboration` must be a non-empty string, not numeric 42",
    fixed = TRUE,
    class = "linksight_argument_error"
  )
})

test_that("a connection that is not one is an argument error", {
  expect_error(
    lks_collaborations(hub_url),
    "`conn` must be a connection made by lks_connect(), not character",
    fixed = TRUE,
    class = "linksight_argument_error"
  )
})
