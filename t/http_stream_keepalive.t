#!/usr/bin/perl
# glm_stream_keepalive: a stream whose request waits for the engine (queued
# for a batch slot: the fake's "hold" sends the HEAD, then nothing until
# SIGUSR2) gets an SSE comment line every interval, before its first data
# event, so that proxies with idle timeouts keep the connection; the stream
# then completes as usual.  Off, nothing but the events is sent; the
# official openai SDK reads a stream with comments in it unharmed.
#
# Nothing here waits for the interval to pass: each check reads until what
# must come has come, then releases the engine.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

my $t = GlmTest->new;

plan skip_all => 'needs the fake engine (its hold switch)' unless $t->fake;

$t->run(server => <<"END");
        glm_stream_keepalive 1s;
$GlmTest::LOCATIONS
        location = /off {
            glm_stream_keepalive off;
            glm_pass chat;
        }
        location = /json {
            glm_pass chat;
        }
END

my $release = sub { kill 'USR2', $t->engine_pid };

# ---- a held stream: comments first, then the events ----

{
    my $s = $t->stream_open(GlmTest::chat_body(content => 'one two three',
                                               stream => \1,
                                               fake => 'hold'));
    my $buf = GlmTest::read_until($s, qr/\r\n\r\n[\s\S]*\n\n/, 60);
    like($buf, qr{^HTTP/1\.1 200 .*text/event-stream}s,
         'held stream: 200 SSE head');

    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    $body //= '';
    (my $plain = $body) =~ s/^[0-9a-f]+\r\n|\r\n//mg;    # chunk framing
    like($plain, qr/\A: keepalive\n\n/,
         'held stream: a comment line before any data event');
    unlike($plain, qr/^data:/m, 'held stream: no data event while held');

    $release->();
    $buf = GlmTest::read_until($s, qr/\r\n0\r\n\r\n\z/, 60, $buf);
    close $s;

    my $r = GlmTest::parse_response($buf);
    ok($r->{complete}, 'held stream: the chunked body ends');
    is(GlmTest::sse_text($r->{body}), 'one two three',
       'held stream: every token after the release');
    my @ev = GlmTest::sse_events($r->{body});
    is($ev[-1], '[DONE]', 'held stream: ends with [DONE]');
    like($r->{body}, qr/\A(?:: keepalive\n\n)+data: /,
         'held stream: only comments come before the first event');
    unlike($r->{body}, qr/[^\n]\n: keepalive|: keepalive\n[^\n]/,
           'held stream: each comment is a line of its own, between events');
}

# ---- off: nothing before the first event, however long it waits ----

{
    # a held stream on /off, then one with comments on the same worker:
    # once the second has had its comment, the first's interval (were it
    # on) has passed too, since both timers were armed in that order
    my $off = $t->stream_open(GlmTest::chat_body(content => 'quiet',
                                                 stream => \1,
                                                 fake => 'hold'),
                              path => '/off');
    my $offbuf = GlmTest::read_until($off, qr/\r\n\r\n/, 60);
    like($offbuf, qr{^HTTP/1\.1 200 }, 'off: 200 head');

    my $on = $t->stream_open(GlmTest::chat_body(stream => \1,
                                                fake => 'hold'));
    my $onbuf = GlmTest::read_until($on, qr/: keepalive\n\n/, 60);
    like($onbuf, qr/: keepalive\n\n/, 'off: the stream beside it had its comment');

    $release->();
    $offbuf = GlmTest::read_until($off, qr/\r\n0\r\n\r\n\z/, 60, $offbuf);
    $onbuf = GlmTest::read_until($on, qr/\r\n0\r\n\r\n\z/, 60, $onbuf);
    close $off;
    close $on;

    my $r = GlmTest::parse_response($offbuf);
    ok($r->{complete}, 'off: the stream completes');
    unlike($r->{body}, qr/keepalive/, 'off: no comment was sent');
    like($r->{body}, qr/\Adata: /, 'off: the body starts with the first event');
    is(GlmTest::sse_text($r->{body}), 'quiet', 'off: every token');
}

# ---- not a stream: the JSON body is untouched ----

{
    my $s = $t->stream_open(GlmTest::chat_body(content => 'plain',
                                               fake => 'hold'),
                            path => '/json');
    my $on = $t->stream_open(GlmTest::chat_body(stream => \1,
                                                fake => 'hold'));
    my $onbuf = GlmTest::read_until($on, qr/: keepalive\n\n/, 60);
    like($onbuf, qr/: keepalive\n\n/, 'json: the stream beside it had its comment');

    $release->();
    my $buf = GlmTest::read_until($s, qr/(?!)/, 60);    # to EOF
    GlmTest::read_until($on, qr/\r\n0\r\n\r\n\z/, 60, $onbuf);
    close $s;
    close $on;

    my $r = GlmTest::parse_response($buf);
    is($r->{status}, 200, 'json: 200');
    is($r->{json} && $r->{json}{choices}[0]{message}{content}, 'plain',
       'json: the body is the completion alone');
}

# ---- the official SDK reads a stream that had comments ----

SKIP: {
    my $py = $ENV{GLM_TEST_PYTHON}
             // (-x "$GlmTest::REPO/build/pyvenv/bin/python"
                 ? "$GlmTest::REPO/build/pyvenv/bin/python" : 'python3');
    skip "$py has no openai package (make test-deps)", 3
        unless system("$py -c 'import openai' >/dev/null 2>&1") == 0;

    my $script = <<'PY';
import sys, openai
client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="unused",
                       max_retries=0, timeout=120)
stream = client.chat.completions.create(
    model="glm-4.5-air", stream=True, extra_body={"fake": "hold"},
    messages=[{"role": "user", "content": "sdk reads on"}])
print("opened", flush=True)
parts, finish = [], None
for chunk in stream:
    for c in chunk.choices:
        parts.append(c.delta.content or "")
        finish = c.finish_reason or finish
print("text=%s finish=%s" % ("".join(parts), finish), flush=True)
PY
    my $port = $t->port;
    my $pid = open(my $py_out, '-|', $py, '-c', $script,
                   "http://127.0.0.1:$port") or die "$py: $!";

    # the SDK has its head, so its keepalive timer runs; a stream opened
    # after it on the same worker has its comment only after the SDK's
    my $opened = <$py_out> // '';
    is($opened, "opened\n", 'sdk: the stream opened');

    my $on = $t->stream_open(GlmTest::chat_body(stream => \1,
                                                fake => 'hold'));
    my $onbuf = GlmTest::read_until($on, qr/: keepalive\n\n/, 60);
    like($onbuf, qr/: keepalive\n\n/, 'sdk: comments were sent meanwhile');

    $release->();
    GlmTest::read_until($on, qr/\r\n0\r\n\r\n\z/, 60, $onbuf);
    close $on;

    my $rest = do { local $/; <$py_out> } // '';
    close $py_out;
    is($rest, "text=sdk reads on finish=stop\n",
       'sdk: every token and the finish reason, comments ignored')
        or diag("exit status $?");
}

$t->finish;
done_testing();
