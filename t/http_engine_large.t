#!/usr/bin/perl
# A non-streamed answer larger than glm_output_limit: the engine writes it
# in one burst when generation ends, and the client gets it whole with a
# 200 (what is beyond the limit waits in a temporary file), never the 502
# "The response is larger than the server buffers" it once got after the
# whole generation.  Skipped with the fake engine (GLM_TEST_ENGINE unset;
# t/http_abort.t has the fake's version).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use JSON::PP;
use Test::More;

my $t = GlmTest->new;

plan skip_all => 'needs the real engine (GLM_TEST_ENGINE)' if $t->fake;

$t->run(server => <<"END");
$GlmTest::LOCATIONS
        location = /small-buffer {
            glm_output_limit 64k;
            glm_pass chat;
        }
END

my $tokens = 300;
my $r = $t->post('/small-buffer',
                 GlmTest::chat_body(content => 'Tell me about nginx.', n => 2,
                                    logprobs => \1, top_logprobs => 20,
                                    max_tokens => $tokens, ignore_eos => \1));

is($r->{status}, 200, 'large answer: 200');
ok(length $r->{body} > 64 * 1024,
   'large answer: larger than glm_output_limit (' . length($r->{body}) . ' bytes)');
is($r->{headers}{'content-length'}, length $r->{body},
   'large answer: as long as its Content-Length');

my $j = eval { decode_json($r->{body}) };
ok($j, 'large answer: valid JSON') or diag($@);
$j //= {};

is(scalar @{ $j->{choices} // [] }, 2, 'large answer: both choices');
for my $i (0, 1) {
    my $c = $j->{choices}[$i] // {};
    my $lp = $c->{logprobs}{content} // [];
    is(scalar @$lp, $tokens, "choice $i: a logprob for every token");
    is(scalar @{ $lp->[-1]{top_logprobs} // [] }, 20,
       "choice $i: 20 alternatives to its last token");
    is($c->{finish_reason}, 'length', "choice $i: ended by max_tokens");
}
is($j->{usage}{completion_tokens}, 2 * $tokens, 'large answer: usage');

unlike($t->error_log, qr/wait for the client|larger than the server buffers/,
       'large answer: nothing was cut');

$t->finish;
done_testing();
