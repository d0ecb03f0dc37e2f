#!/usr/bin/perl
# The official `openai` Python package drives nginx + the real engine,
# streaming and not (t/tool_check.py).  GLM_TEST_PYTHON names an
# interpreter that has the package (make test makes a venv for it); skipped
# without one, or with the fake engine.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use Test::More;

my $t = GlmTest->new;
my $py = $ENV{GLM_TEST_PYTHON} // 'python3';

plan skip_all => 'needs the real engine (GLM_TEST_ENGINE)' if $t->fake;
plan skip_all => "$py has no openai package"
    unless system("$py -c 'import openai' >/dev/null 2>&1") == 0;

$t->run(server => $GlmTest::LOCATIONS);

my $out = `$py $FindBin::Bin/tool_check.py http://127.0.0.1:${\ $t->port } 2>&1`;
my $rc = $? >> 8;
diag($out) if $rc;
for my $line (split /\n/, $out) {
    ok($line =~ /^ok /, $line) if $line =~ /^(ok|FAIL) /;
}
is($rc, 0, 'tool_check.py exits 0');

$t->finish;
done_testing;
