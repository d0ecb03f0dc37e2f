#!/usr/bin/perl
# The engine dies (kill -9) under open requests: streams end with the
# in-band error event and [DONE], requests without a response head get 503,
# /health says 503, new requests get 503 with Retry-After, and once an
# engine is back on the socket the same nginx workers serve again.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

my $t = GlmTest->new(workers => 2)->run;
my $chat = '/v1/chat/completions';
my $gone = '{"error":{"message":"engine process exited",'
           . '"type":"InternalServerError","param":null,"code":500}}';

# a stream long enough to be cut: the fake's slow switch, or many tokens
sub long_stream {
    return $t->fake
        ? GlmTest::chat_body(content => join(' ', 1 .. 50), stream => \1,
                             fake => 'slow:100')
        : GlmTest::chat_body(content => 'Count to ten thousand.',
                             stream => \1, max_tokens => 4000,
                             ignore_eos => \1);
}

sub workers_started {
    return scalar(() = $t->error_log =~ /start worker process/g);
}

my $workers = workers_started();

# ---- kill -9 with a stream and a plain request open ----

my $s = $t->stream_open(long_stream());
my $buf = GlmTest::read_until($s, qr/"content":"[^"]+"/, 10);
like($buf, qr{^HTTP/1.1 200}, 'stream started');

my $plain;
if ($t->fake) {
    $plain = $t->stream_open(GlmTest::chat_body(fake => 'nohead'));
    sleep 0.2;
}

$t->kill_engine('KILL');

$buf = GlmTest::read_until($s, qr/0\r\n\r\n\z/, 5, $buf);
close $s;
my $r = GlmTest::parse_response($buf);
my @ev = GlmTest::sse_events($r->{body});
is($ev[-2], $gone, 'stream: in-band error event');
is($ev[-1], '[DONE]', 'stream: then [DONE]');
ok($r->{complete}, 'stream: chunked encoding ends properly');
is(scalar(grep { /"error"/ } @ev), 1, 'stream: one error event');

SKIP: {
    skip 'needs the fake engine', 4 unless $plain;
    $r = GlmTest::parse_response(GlmTest::read_until($plain, qr/(?!)/, 5));
    close $plain;
    is($r->{status}, 503, 'no head yet: 503');
    is($r->{headers}{'retry-after'}, '1', 'no head yet: Retry-After');
    is($r->{json}{error}{message}, 'engine process exited',
       'no head yet: message');
    is($r->{json}{error}{type}, 'ServiceUnavailableError', 'no head yet: type');
}

# ---- while it is down ----

ok($t->wait_health(503, 5), '/health is 503');
is($t->get('/health')->{body}, '', '/health body is empty');

$r = $t->post($chat, GlmTest::chat_body());
is($r->{status}, 503, 'new request: 503');
is($r->{headers}{'retry-after'}, '1', 'new request: Retry-After 1');
is($r->{body}, '{"error":{"message":"engine not available",'
               . '"type":"ServiceUnavailableError","param":null,"code":503}}',
   'new request: body');

$r = $t->get('/v1/models');
is($r->{status}, 503, 'models: 503');

# nginx itself keeps serving what needs no engine
$r = $t->post($chat, GlmTest::chat_body(), type => 'text/plain');
is($r->{status}, 400, 'module-side checks still answer');

like($t->error_log, qr/glm: engine pid \d+ lost: the engine closed the connection/,
     'loss logged');

# ---- back ----

$t->start_engine;
ok($t->wait_health(200, 10), 'engine back: /health 200');

$r = $t->post($chat, GlmTest::chat_body(content => 'back again'));
is($r->{status}, 200, 'engine back: chat 200');
is($r->{json}{choices}[0]{message}{content}, 'back again', 'engine back: echo')
    if $t->fake;

$r = $t->post($chat, GlmTest::chat_body(content => 'streaming too',
                                        stream => \1));
is((GlmTest::sse_events($r->{body}))[-1], '[DONE]', 'engine back: stream');

like($t->error_log, qr/\[notice\].*glm: attached to engine pid \d+ epoch \d+/,
     'new epoch noticed');
is(workers_started(), $workers, 'nginx workers untouched');

# ---- the engine dies by itself in the middle of a stream ----

SKIP: {
    skip 'needs the fake engine', 4 unless $t->fake;

    $r = $t->post($chat, GlmTest::chat_body(content => 'a b c d e f',
                                            stream => \1, fake => 'die:3'));
    @ev = GlmTest::sse_events($r->{body});
    is(scalar @ev, 5, 'self-kill: role, two words, error, [DONE]');
    is($ev[-2], $gone, 'self-kill: error event');
    ok($t->reap_engine, 'self-kill: the engine is gone');

    $t->start_engine;
    ok($t->wait_health(200, 10), 'self-kill: back again');
}

$t->finish;
done_testing();
