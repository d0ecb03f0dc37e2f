#!/usr/bin/perl
# The engine served with an FP8 KV cache (--kv-cache-dtype fp8, vLLM's
# fp8_e4m3): it says which cache it made at start-up and answers a chat,
# streamed and not.  What FP8 costs in accuracy is make kv-dtype-check's
# business; this is the flag working end to end.  Skipped with the fake
# engine (GLM_TEST_ENGINE unset).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use JSON::PP;
use Test::More;

local $ENV{GLM_TEST_ENGINE} = $ENV{GLM_TEST_ENGINE} . ' --kv-cache-dtype fp8'
    if defined $ENV{GLM_TEST_ENGINE};
my $t = GlmTest->new;

plan skip_all => 'needs the real engine (GLM_TEST_ENGINE)' if $t->fake;

$t->run(server => $GlmTest::LOCATIONS);

my $r = $t->post('/v1/chat/completions',
                 GlmTest::chat_body(content => 'Tell me about nginx.', max_tokens => 12,
                                    ignore_eos => \1));
is($r->{status}, 200, 'fp8 KV: chat answered');
my $j = eval { decode_json($r->{body}) } // {};
is($j->{usage}{completion_tokens}, 12, 'fp8 KV: 12 tokens generated');
ok(length($j->{choices}[0]{message}{content} // '') > 0, 'fp8 KV: the answer has text');

my $s = $t->post('/v1/chat/completions',
                 GlmTest::chat_body(content => 'And about FP8?', max_tokens => 8,
                                    ignore_eos => \1, stream => \1));
is($s->{status}, 200, 'fp8 KV: streamed chat answered');
like($s->{body}, qr/data: \[DONE\]/, 'fp8 KV: the stream ends with [DONE]');

my $log = do { local (@ARGV, $/) = ($t->dir . '/engine.stderr'); <> } // '';
like($log, qr/KV cache fp8_e4m3, scales 1\.0 \(none in the checkpoint\)/,
     'fp8 KV: the engine says it made an fp8_e4m3 cache');

$t->finish;
done_testing();
