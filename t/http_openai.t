#!/usr/bin/perl
# The official `openai` Python package drives nginx + the real engine,
# streaming and not (t/openai_check.py).  GLM_TEST_PYTHON names an
# interpreter that has the package (make test makes a venv for it); skipped
# without one, or with the fake engine.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use Test::More;

GlmTest::python_client_check('openai_check.py');
