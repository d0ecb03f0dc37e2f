#!/usr/bin/perl
# /v1/completions (glm_pass completions) and /ping (glm_health post).
#
# With any engine: /ping answers GET and POST as vLLM's does, other
# methods get an OpenAI-shaped 405, and it is 503 without an engine; the
# completions location reaches the engine.  With the real engine, against
# transformers (t/fixtures/glm45-air-tiny/reference.json): greedy text and
# token ids, the sampled tokens' logprobs (top alternatives and their
# differences, the first token's absolute value from the full last-row
# logits) and the prompt's logprobs (echo and prompt_logprobs: ranks, ids
# and differences); then what vLLM documents: text and id prompts alike,
# lists of prompts with n, streaming equal to the body, echo (max_tokens 0:
# the prompt alone), stop strings, the default of 16 tokens, usage, and the
# 400s in vLLM's words.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use JSON::PP;
use List::Util qw(max sum);
use Test::More;

binmode(Test::More->builder->$_, ':encoding(UTF-8)')
    for qw(output failure_output todo_output);

my $t = GlmTest->new->run(server => $GlmTest::LOCATIONS);
my $cmpl = '/v1/completions';
my $r;

# ---- /ping ----

$r = $t->get('/ping');
is($r->{status}, 200, '/ping GET: 200');
is($r->{body}, '', '/ping GET: empty body');
$r = $t->post('/ping', '{"anything": true}');
is($r->{status}, 200, '/ping POST: 200, body discarded');
$r = $t->request(method => 'PUT', path => '/ping', body => '{}');
is($r->{status}, 405, '/ping PUT: 405');
is($r->{json}{error}{code}, 405, '/ping PUT: OpenAI-shaped');
$r = $t->post('/health', '{}');
is($r->{status}, 405, '/health stays GET only');

$r = $t->get($cmpl);
is($r->{status}, 405, 'GET /v1/completions: 405');
is($r->{headers}{allow}, 'POST', '... Allow: POST');

if ($t->fake) {
    $r = $t->post($cmpl, '{"prompt": "routed"}');
    is($r->{status}, 200, 'completions reach the engine');
    is($r->{json}{choices}[0]{text}, 'routed', '... through the completions op');
    $r = $t->post($cmpl, '{"prompt": "x", "max_tokens": -1}');
    is($r->{status}, 400, 'the module checks max_tokens for completions too');
    $t->kill_engine;
    $t->wait_health(503);
    is($t->get('/ping')->{status}, 503, '/ping without an engine: 503');
    is($t->post('/ping', '{}')->{status}, 503, '/ping POST without an engine: 503');
    $t->finish;
    done_testing;
    exit;
}

# ---- against transformers ----

my $ref = decode_json(GlmTest::read_file(
    "$GlmTest::REPO/t/fixtures/glm45-air-tiny/reference.json"));
my %text_of;

sub token_text {
    my ($id) = @_;
    $text_of{$id} //= $t->post('/detokenize', encode_json({ tokens => [$id] }))
                        ->{json}{prompt};
    return $text_of{$id};
}

sub lse {
    my ($v) = @_;
    my $m = max(@$v);
    return $m + log(sum(map { exp($_ - $m) } @$v));
}

sub near { abs($_[0] - $_[1]) <= ($_[2] // 4e-3) }

# top alternatives of one position against the reference's top logits of
# it: the ids by rank, and logprob differences equal to logit differences
sub alts_match {
    my ($got_ids, $got_lp, $ref_ids, $ref_logits) = @_;
    my $n = @$got_ids;
    return 0 unless "@$got_ids" eq "@{$ref_ids}[0 .. $n - 1]";
    for my $k (1 .. $n - 1) {
        return 0 unless near($got_lp->[$k] - $got_lp->[0],
                             $ref_logits->[$k] - $ref_logits->[0]);
    }
    return 1;
}

for my $i (1, 3, 5) {
    my $p = $ref->{prompts}[$i];
    my $n = @{ $p->{greedy_ids} };
    my $name = "reference prompt $i";

    $r = $t->post($cmpl, encode_json({
        prompt => $p->{text}, max_tokens => $n, temperature => 0, ignore_eos => \1,
        skip_special_tokens => \0, return_token_ids => \1, logprobs => 5 }));
    is($r->{status}, 200, "$name: 200");
    my $c = $r->{json}{choices}[0] // {};
    is("@{ $c->{token_ids} // [] }", "@{ $p->{greedy_ids} }",
       "$name: greedy ids are transformers'");
    is($c->{text}, $p->{greedy_text}, "$name: text is transformers' decode");
    is("@{ $c->{prompt_token_ids} // [] }", "@{ $p->{ids} }", "$name: prompt ids");
    is($r->{json}{usage}{prompt_tokens}, scalar @{ $p->{ids} }, "$name: usage prompt");
    is($r->{json}{usage}{completion_tokens}, $n, "$name: usage completion");

    my $lp = $c->{logprobs} // {};
    is(scalar @{ $lp->{tokens} // [] }, $n, "$name: a logprobs entry per token");
    is(join('', @{ $lp->{tokens} // [] }), $c->{text},
       "$name: tokens concatenate to the text");
    my $first = $p->{greedy_ids}[0];
    ok(near($lp->{token_logprobs}[0],
            $p->{last_logits}[$first] - lse($p->{last_logits})),
       "$name: first token's logprob is log-softmax of transformers' logits "
       . "($lp->{token_logprobs}[0])");
    my ($ok, $offsets_ok, $off) = (0, 1, 0);
    for my $k (0 .. $n - 1) {
        # vLLM's map: the sampled token, then the top 5, an id once, keyed by
        # text (a later id with the same text overwrites the value)
        my $top = $lp->{top_logprobs}[$k] // {};
        my @rid = ($p->{greedy_ids}[$k], @{ $p->{step_topk_ids}[$k] }[0 .. 4]);
        my @rlg = ($p->{step_topk_logits}[$k][0], @{ $p->{step_topk_logits}[$k] }[0 .. 4]);
        my (%want, %seen);
        for my $m (0 .. 5) {
            $want{ token_text($rid[$m]) } = $rlg[$m] unless $seen{ $rid[$m] }++;
        }
        my $t0 = token_text($rid[0]);
        my $good = $rid[0] == $p->{step_topk_ids}[$k][0]
                   && join("\0", sort keys %$top) eq join("\0", sort keys %want);
        for my $key (keys %want) {
            $good &&= defined $top->{$key} && defined $top->{$t0}
                      && near($top->{$key} - $top->{$t0}, $want{$key} - $want{$t0});
        }
        $ok++ if $good;
        $offsets_ok &&= $lp->{text_offset}[$k] == $off;
        $off += length($lp->{tokens}[$k] // '');
    }
    is($ok, $n, "$name: every step's top 5 (and the token) match transformers'");
    ok($offsets_ok, "$name: text_offset counts characters of the token texts");
}

# the prompt's logprobs: echo with logprobs, and prompt_logprobs
{
    my $p = $ref->{prompts}[1];
    my $n = @{ $p->{ids} };

    $r = $t->post($cmpl, encode_json({
        prompt => $p->{ids}, max_tokens => 1, temperature => 0, echo => \1,
        logprobs => 3, prompt_logprobs => 4 }));
    is($r->{status}, 200, 'echo + logprobs + prompt_logprobs: 200');
    my $c = $r->{json}{choices}[0] // {};
    my $lp = $c->{logprobs} // {};
    is(scalar @{ $lp->{tokens} // [] }, $n + 1, 'echo: a logprobs entry per prompt token'
       . ' and the sampled one');
    ok(!defined $lp->{token_logprobs}[0] && !defined $lp->{top_logprobs}[0],
       "echo: the first prompt token's logprob and top_logprobs are null");
    is(index($c->{text}, join('', map { token_text($_) } @{ $p->{ids} })), 0,
       'echo: the text starts with the prompt');

    my $pl = $c->{prompt_logprobs} // [];
    is(scalar @$pl, $n, 'prompt_logprobs: one per prompt token');
    ok(!defined $pl->[0], 'prompt_logprobs: the first is null');
    my ($good, $ranks) = (0, 0);
    for my $k (1 .. $n - 1) {
        my $e = $pl->[$k] // {};
        my @by_rank = sort { $e->{$a}{rank} <=> $e->{$b}{rank} }
                      grep { $e->{$_}{rank} <= 4 } keys %$e;
        my @lps = map { $e->{$_}{logprob} } @by_rank;
        $good++ if @by_rank == 4
                   && alts_match(\@by_rank, \@lps, $p->{topk_ids}[$k - 1],
                                 $p->{topk_logits}[$k - 1]);
        # the prompt token's own rank, where the reference's top 8 show it
        my $tok = $p->{ids}[$k];
        my ($at) = grep { $p->{topk_ids}[$k - 1][$_] == $tok } 0 .. 7;
        $ranks++ if defined $e->{$tok}
                    && (defined $at ? $e->{$tok}{rank} == $at + 1 : $e->{$tok}{rank} > 8);
        # the echoed logprobs agree with them (3 alternatives there)
    }
    is($good, $n - 1, 'prompt_logprobs: the 4 most likely ids and their logprob'
       . ' differences are transformers\'');
    is($ranks, $n - 1, "prompt_logprobs: the prompt token's rank is its place in"
       . " transformers' logits");
    my $agree = 0;
    for my $k (1 .. $n - 1) {
        my $tok = $p->{ids}[$k];
        $agree++ if near($lp->{token_logprobs}[$k], $pl->[$k]{$tok}{logprob}, 1e-6);
    }
    is($agree, $n - 1, 'echoed token_logprobs are the prompt_logprobs');
}

# ---- what vLLM documents ----

my $text = 'The quick brown fox';
my %greedy = (prompt => $text, max_tokens => 8, temperature => 0, ignore_eos => \1);

$r = $t->post($cmpl, encode_json(\%greedy));
is($r->{status}, 200, 'text prompt: 200');
my $j = $r->{json} // {};
like($j->{id} // '', qr/^cmpl-[0-9a-f]{32}$/, 'id is cmpl-<hex>');
is($j->{object}, 'text_completion', 'object text_completion');
is($j->{choices}[0]{finish_reason}, 'length', 'finish_reason length');
my $greedy = $j->{choices}[0]{text};
my $ids = $t->post('/tokenize', encode_json({ prompt => $text }))->{json}{tokens};
is($j->{usage}{prompt_tokens}, scalar @$ids, 'usage.prompt_tokens is /tokenize\'s count');
is($j->{usage}{total_tokens}, @$ids + 8, 'usage.total_tokens');

$r = $t->post($cmpl, encode_json({ %greedy, prompt => $ids }));
is($r->{json}{choices}[0]{text}, $greedy, 'token-id prompt: the same text');

$r = $t->post($cmpl, encode_json({ %greedy, stream => \1,
                                   stream_options => { include_usage => \1 } }));
is($r->{status}, 200, 'stream: 200');
like($r->{headers}{'content-type'} // '', qr{^text/event-stream}, 'stream: SSE');
my @ev = GlmTest::sse_events($r->{body});
is($ev[-1], '[DONE]', 'stream ends with [DONE]');
my @chunks = map { decode_json($_) } @ev[0 .. $#ev - 1];
is(join('', map { $_->{choices}[0]{text} // '' } @chunks[0 .. $#chunks - 1]), $greedy,
   'streamed text equals the body\'s');
is(scalar(@chunks) - 1, 8, 'a chunk per token');
is($chunks[-2]{choices}[0]{finish_reason}, 'length', 'the last chunk finishes');
is_deeply($chunks[-1]{choices}, [], 'usage chunk: no choices');
is($chunks[-1]{usage}{completion_tokens}, 8, 'usage chunk counts');
ok(!grep({ ($_->{object} // '') ne 'text_completion' } @chunks), 'chunks are text_completion');

my $x_ids = $t->post('/tokenize', '{"prompt":"x"}')->{json}{tokens};
$r = $t->post($cmpl, encode_json({ %greedy, prompt => [ $text, 'x' ], n => 2 }));
$j = $r->{json} // {};
is(scalar @{ $j->{choices} // [] }, 4, 'two prompts, n=2: four choices');
is(join(',', map { $_->{index} } @{ $j->{choices} // [] }), '0,1,2,3', '... indexed in order');
is($j->{choices}[1]{text}, $greedy, 'prompt 0, choice 1: the greedy text');
is($j->{usage}{prompt_tokens}, @$ids + @$x_ids, 'usage counts each prompt once');
is($j->{usage}{completion_tokens}, 32, '... and every choice\'s tokens');
my $x_text = $j->{choices}[2]{text};
$r = $t->post($cmpl, encode_json({ %greedy, prompt => [ $ids, $x_ids ], n => 2 }));
is(join('|', map { $_->{text} } @{ $r->{json}{choices} // [] }),
   join('|', $greedy, $greedy, $x_text, $x_text), 'lists of token ids: the same four');

$r = $t->post($cmpl, encode_json({ %greedy, echo => \1 }));
is($r->{json}{choices}[0]{text}, $text . $greedy, 'echo: the prompt, then the completion');
$r = $t->post($cmpl, encode_json({ %greedy, echo => \1, max_tokens => 0 }));
is($r->{json}{choices}[0]{text}, $text, 'echo, max_tokens 0: the prompt alone');
is($r->{json}{choices}[0]{finish_reason}, 'length', '... finish_reason length');

$r = $t->post($cmpl, encode_json({ prompt => $text, temperature => 0, ignore_eos => \1 }));
is($r->{json}{usage}{completion_tokens}, 16, 'max_tokens defaults to 16');

{
    my $stop = substr($greedy, 3, 2);
    my $cut = index($greedy, $stop);
    $r = $t->post($cmpl, encode_json({ %greedy, stop => [$stop] }));
    my $c = $r->{json}{choices}[0] // {};
    is($c->{text}, substr($greedy, 0, $cut), "stop '$stop': cut before it");
    is($c->{finish_reason}, 'stop', '... finish_reason stop');
    is($c->{stop_reason}, $stop, '... stop_reason is the string');
}

# ---- refused, in vLLM's words ----

sub refused {
    my ($body, $message, $param, $name) = @_;
    my $res = $t->post($cmpl, encode_json($body));
    is($res->{status}, 400, "$name: 400");
    is($res->{json}{error}{message}, $message, "$name: vLLM's message");
    is($res->{json}{error}{param}, $param, "$name: param");
}

refused({ prompt => 'a', suffix => 'b' }, 'suffix is not currently supported', undef,
        'suffix');
refused({ prompt => '' }, 'Either prompt or prompt_embeds must be provided and non-empty.',
        'prompt', 'empty prompt');
refused({ prompt => [] }, 'Either prompt or prompt_embeds must be provided and non-empty.',
        'prompt', 'empty prompt list');
refused({ prompt => [ 1, 99999999 ] }, 'Token id 99999999 is out of vocabulary', 'prompt',
        'token id out of vocabulary');
refused({ prompt => 'a', logprobs => 21 },
        'Requested sample logprobs of 21, which is greater than max allowed: 20', 'logprobs',
        'logprobs above --max-logprobs');
refused({ prompt => 'a', max_tokens => 0 }, 'max_tokens must be at least 1, got 0.',
        'max_tokens', 'max_tokens 0 without echo');
refused({ prompt => [ 'a', [ 1 ] ] }, "'prompt' must be a string, a list of token ids,"
        . ' or a list of strings or of lists of token ids', 'prompt', 'mixed prompt list');
refused({ prompt => [ ('a') x 129 ] },
        'prompt list length 129 exceeds the maximum allowed count of 128.', 'prompt',
        'too many prompts');
refused({ prompt => 'a', stream => \1, prompt_logprobs => 1 },
        '`prompt_logprobs` are not available when `stream=True`.', 'prompt_logprobs',
        'prompt_logprobs with stream');
refused({ prompt => 'a', stream_options => { include_usage => \1 } },
        'Stream options can only be defined when `stream=True`.', 'stream_options',
        'stream_options without stream');

$t->finish;
done_testing;
