#!/usr/bin/perl
# A frozen engine (SIGSTOP) is not healthy: while work waits for it and it
# has not turned its loop for glm_health_timeout, /health says 503 and
# /metrics, /v1/models answer 503 instead of hanging; once it runs again,
# /health is 200 and the waiting stream completes.  An engine stopped with
# nothing waiting is as good as one asleep in poll: /health stays 200.
# (ring.h's Health: heartbeat_ns, busy_since_ns.)  Two workers, so that
# /health also answers for work waiting on the other worker's channel.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use Test::More;
use Time::HiRes qw(sleep time);

my $t = GlmTest->new(workers => 2)
    ->run(http => "    glm_health_timeout 1s;\n");
my $chat = '/v1/chat/completions';

my $stopped;
END { kill 'CONT', $stopped if $stopped; }

sub engine_stop { $stopped = $t->engine_pid; kill 'STOP', $stopped; }
sub engine_cont { kill 'CONT', $stopped; $stopped = undef; }

# the harness's request timeout is a bound on a hang, well above 1s
sub is_unavailable {
    my ($path, $name) = @_;
    my $r = $t->get($path, timeout => 30);
    is($r->{status}, 503, "$name: 503, not a hang");
    is($r->{json}{error}{message}, 'engine not responding',
       "$name: OpenAI-shaped error");
    is($r->{headers}{'retry-after'}, '1', "$name: Retry-After");
}

sub stream_done {
    my ($s, $name, $got) = @_;
    my $buf = GlmTest::read_until($s, qr/data: \[DONE\]/, 120, $got);
    close $s;
    like($buf, qr{^HTTP/1.1 200}, "$name: 200");
    like($buf, qr/"finish_reason":"(stop|length)"/, "$name: finished");
    like($buf, qr/data: \[DONE\]/, "$name: [DONE]");
    return $buf;
}

is($t->get('/health')->{status}, 200, 'healthy at start');

# ---- stopped with a stream in flight inside the engine ----

{
    my $body = $t->fake
        ? GlmTest::chat_body(content => join(' ', 1 .. 20), stream => \1,
                             fake => 'slow:100')
        : GlmTest::chat_body(content => 'Count to ten thousand.',
                             stream => \1, max_tokens => 2000,
                             ignore_eos => \1);
    my $s = $t->stream_open($body);
    my $buf = GlmTest::read_until($s, qr/"content":"[^"]+"/, 30);
    like($buf, qr{^HTTP/1.1 200}, 'in flight: stream started');

    engine_stop();

    ok(eval { $t->wait_health(503, 30) }, 'in flight: /health becomes 503');
    is($t->get('/health')->{body}, '', 'in flight: /health body is empty');
    is_unavailable('/metrics', 'in flight: /metrics');
    is_unavailable('/v1/models', 'in flight: /v1/models');

    engine_cont();

    ok(eval { $t->wait_health(200, 30) }, 'running again: /health is 200');
    $buf = stream_done($s, 'in flight: the stream', $buf);
    is(GlmTest::sse_text($buf), join(' ', 1 .. 20), 'in flight: every word')
        if $t->fake;
}

# ---- stopped while idle: nothing waits, then something does ----

{
    engine_stop();

    # past glm_health_timeout, with nothing waiting: asleep is not stuck
    sleep 1.5;
    is($t->get('/health')->{status}, 200, 'idle, stopped: /health is 200');

    # the request is the work that waits; once it is answered, none does
    is_unavailable('/v1/models', 'idle, stopped: /v1/models');
    is($t->get('/health')->{status}, 200,
       'idle, stopped, the request answered: /health is 200');

    my $s = $t->stream_open(GlmTest::chat_body(stream => \1));
    ok(eval { $t->wait_health(503, 30) },
       'a stream waits on the stopped engine: /health becomes 503');
    is_unavailable('/metrics', 'a stream waits: /metrics');

    engine_cont();

    ok(eval { $t->wait_health(200, 30) }, 'running again: /health is 200');
    stream_done($s, 'the waiting stream');

    my $r = $t->get('/v1/models');
    is($r->{status}, 200, 'running again: /v1/models');
    is($t->get('/metrics')->{status}, 200, 'running again: /metrics');
}

$t->finish;
done_testing();
