#!/usr/bin/perl
# Structured outputs through nginx + the real engine with the official
# `openai` Python package (t/structured_check.py): parse() and
# stream(response_format=) with a pydantic model, json_object, choice, regex
# and grammar, 100 seeds each.  Skipped without the real engine or without a
# GLM_TEST_PYTHON that has the package.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use Test::More;

GlmTest::python_client_check('structured_check.py');
