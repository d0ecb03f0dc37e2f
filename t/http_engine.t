#!/usr/bin/perl
# The real engine behind real nginx: what only a model can show.  Greedy
# output is the same streamed and not, alone and among 200 concurrent
# streams; a client that leaves mid-stream frees its KV blocks at once
# (visible in /metrics); the engine killed mid-stream ends the stream with
# an error event, and a new engine serves again with nginx untouched.
# Skipped with the fake engine (GLM_TEST_ENGINE unset).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use IO::Select;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

my $t = GlmTest->new(workers => 2);

plan skip_all => 'needs the real engine (GLM_TEST_ENGINE)' if $t->fake;

$t->run(server => $GlmTest::LOCATIONS);

# a sample of /metrics: its name, and a label that must appear, if any
sub metric {
    my ($name, $label) = @_;
    my $r = $t->get('/metrics');
    return undef unless $r->{status} == 200;
    $label = defined $label ? qr/[^}]*\Q$label\E/ : qr//;
    return $r->{body} =~ /^\Q$name\E\{$label[^}]*\} ([0-9.e+-]+)$/m ? $1 + 0 : undef;
}

# ---- greedy: non-streaming and streaming agree ----

my $prompt = 'Tell me about nginx.';
my $r = $t->post('/v1/chat/completions',
                 GlmTest::chat_body(content => $prompt, max_tokens => 12, temperature => 0));
is($r->{status}, 200, 'non-streaming chat: 200');
my $j = eval { decode_json($r->{body}) } // {};
my $greedy = $j->{choices}[0]{message}{content} // '';
ok(length $greedy, 'non-streaming chat: some content');
is($j->{usage}{completion_tokens}, 12, 'usage counts 12 completion tokens');

$r = $t->post('/v1/chat/completions',
              GlmTest::chat_body(content => $prompt, max_tokens => 12, temperature => 0,
                                 stream => \1));
is($r->{status}, 200, 'streaming chat: 200');
like($r->{headers}{'content-type'} // '', qr{^text/event-stream}, 'streaming: SSE');
is(GlmTest::sse_text($r->{body}), $greedy, 'streamed text equals the non-streamed text');
like($r->{body}, qr/data: \[DONE\]\n\n\z/, 'stream ends with [DONE]');

# ---- finished reasons are counted per choice, at their event ----

{
    my @reasons = map { "finished_reason=\"$_\"" } qw(stop length abort);
    my $success = sub { map { metric('vllm:request_success_total', $_) } @reasons };
    my @before = $success->();
    $r = $t->post('/v1/chat/completions',
                  GlmTest::chat_body(content => $prompt, n => 4, max_tokens => 1));
    is($r->{status}, 200, 'n=4, max_tokens=1: 200');
    my @after = $success->();
    is($after[1] - $before[1], 4, 'n=4 cut at max_tokens: length counted 4 times');
    is($after[0] - $before[0], 0, '... and stop not at all');
    is($after[2] - $before[2], 0, '... nor abort');
    # every request so far has ended: the two greedy ones and these four
    is($after[0] + $after[1] + $after[2], 6,
       "finished reasons sum to the 6 choices served (@after)");
}

# ---- strings are lengths: U+0000, a lone surrogate, U+FFFF ----

{
    # JSON::PP escapes U+0000 as \u0000; the lone surrogate goes as written
    my $messages = JSON::PP->new->ascii->encode(
        [ { role => 'user', content => "abc\x{0}def ghi jkl X x \x{ffff} y" } ]);
    $messages =~ s/ X / \\ud800 /;
    $r = $t->post('/v1/chat/completions',
                  qq({"messages":$messages,"max_tokens":1}));
    is($r->{status}, 200, 'U+0000 in a message: 200');
    my $served = $r->{json}{usage}{prompt_tokens} // -1;
    $r = $t->post('/tokenize', qq({"messages":$messages}));
    my $tok = $r->{json} // {};
    is($tok->{count}, $served, "/tokenize counts the prompt the chat used ($served)");
    my ($engine, $model) = $t->{engine_cmd} =~ m{^(\S+) serve .*--model (\S+)};
    my $cli = `$engine render-template --model $model --request '{"messages":$messages}'`;
    my ($cli_ids) = $cli =~ /^ids: ([0-9 ]+)$/m;
    is(join(' ', @{ $tok->{tokens} // [] }), $cli_ids // 'no ids',
       'the served prompt ids are the CLI render\'s, NUL and all');
    ok(defined $cli && $cli =~ /abc\0def ghi jkl/, 'the CLI render keeps the U+0000');

    $r = $t->post('/tokenize', '{"prompt":"abc\u0000def"}');
    my $ids = $r->{json}{tokens} // [];
    $r = $t->post('/detokenize', JSON::PP->new->encode({ tokens => $ids }));
    is($r->{json}{prompt}, "abc\x{0}def", '/tokenize prompt with U+0000 round-trips');
}

# ---- 200 concurrent streams, every one complete and equal ----

{
    my $n = 200;
    my $body = GlmTest::chat_body(content => $prompt, max_tokens => 12, temperature => 0,
                                  stream => \1);
    my (%buf, %sock);
    my $sel = IO::Select->new;
    for my $i (1 .. $n) {
        my $s = $t->stream_open($body);
        $sock{$s} = $i;
        $buf{$i} = '';
        $sel->add($s);
    }
    my $deadline = time + 120;
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read(1)) {
            my $got = sysread($s, my $chunk, 65536);
            if (!$got) {
                $sel->remove($s);
                close $s;
                next;
            }
            $buf{ $sock{$s} } .= $chunk;
            if ($buf{ $sock{$s} } =~ /data: \[DONE\]\r?\n\r?\n(?:0\r\n\r\n)?\z/) {
                $sel->remove($s);
                close $s;
            }
        }
    }
    my ($done, $equal) = (0, 0);
    for my $i (1 .. $n) {
        my (undef, $rest) = split /\r\n\r\n/, $buf{$i}, 2;
        next unless defined $rest && $buf{$i} =~ /data: \[DONE\]/;
        $done++;
        # de-chunk: drop the chunk-size lines of HTTP/1.1 chunked encoding
        $rest =~ s/(?:^|\r\n)[0-9a-fA-F]+\r\n//g;
        $equal++ if GlmTest::sse_text($rest) eq $greedy;
    }
    is($done, $n, "$n concurrent streams all end with [DONE]");
    is($equal, $n, "$n concurrent streams all carry the greedy text");
}

# ---- abort mid-stream frees the KV cache ----

{
    my $s = $t->stream_open(GlmTest::chat_body(content => $prompt, max_tokens => 3000,
                                               ignore_eos => \1, temperature => 0,
                                               stream => \1));
    my $buf = GlmTest::read_until($s, qr/"content":"[^"]+"/, 60);
    like($buf, qr/"content"/, 'long stream started');
    my $busy = metric('vllm:kv_cache_usage_perc');
    my $aborts = metric('vllm:request_success_total', 'finished_reason="abort"');
    ok(defined $busy && $busy > 0, "KV cache in use while streaming ($busy)");
    close $s;
    my $t0 = time;
    my ($kv, $running) = (1, 1);
    while (time - $t0 < 30) {       # freed at once; the wait is for a busy machine
        ($kv, $running) = (metric('vllm:kv_cache_usage_perc'),
                           metric('vllm:num_requests_running'));
        last if defined $kv && $kv == 0 && defined $running && $running == 0;
        sleep 0.02;
    }
    is($kv, 0, sprintf('KV usage back to zero %.0f ms after the client left',
                       1000 * (time - $t0)));
    is($running, 0, 'no request left running');
    is(metric('vllm:request_success_total', 'finished_reason="abort"'),
       $aborts + 1, 'the engine counted it as aborted (it did not just finish)');
}

# ---- the engine killed mid-stream, then a new one ----

{
    my $s = $t->stream_open(GlmTest::chat_body(content => $prompt, max_tokens => 3000,
                                               ignore_eos => \1, stream => \1));
    GlmTest::read_until($s, qr/"content"/, 60);
    $t->kill_engine('KILL');
    my $rest = GlmTest::read_until($s, qr/data: \[DONE\]/, 60);
    like($rest, qr/data: \{"error":\{[^\n]*\n\ndata: \[DONE\]/,
         'engine killed: the stream ends with an error event and [DONE]');
    close $s;
    $r = $t->get('/health');
    is($r->{status}, 503, '/health is 503 without the engine');
    $r = $t->post('/v1/chat/completions', GlmTest::chat_body(content => $prompt));
    is($r->{status}, 503, 'new requests get 503 without the engine');
    $t->start_engine;
    ok(eval { $t->wait_health(200, 60) }, 'the worker reconnects to the new engine by itself');
    $r = $t->post('/v1/chat/completions',
                  GlmTest::chat_body(content => $prompt, max_tokens => 12, temperature => 0));
    my $again = eval { decode_json($r->{body}) } // {};
    is($again->{choices}[0]{message}{content}, $greedy,
       'the new engine answers the same greedy text, nginx untouched');
}

# ---- --submit-ring-size bounds the body nginx hands over ----

{
    my $cmd = $t->{engine_cmd};
    $t->kill_engine;
    $t->{engine_cmd} = "$cmd --submit-ring-size 256k";
    $t->start_engine;
    $t->wait_health(200);
    $r = $t->post('/v1/chat/completions',
                  GlmTest::chat_body(content => 'x ' x 150_000));
    is($r->{status}, 413, 'a body over --submit-ring-size 256k: 413');
    is($r->{json}{error}{message}, 'The request body is larger than the engine accepts',
       '... OpenAI-shaped, saying why');
    $r = $t->post('/v1/chat/completions',
                  GlmTest::chat_body(content => 'x ' x 50_000));
    isnt($r->{status}, 413, 'a body under it reaches the engine');
    like($r->{json}{error}{message} // $r->{json}{id} // '', qr/context|chatcmpl/,
         '... which answers it');
}

$t->finish;
done_testing;
