#!/usr/bin/perl
# Round trips through nginx and the module: non-streaming and streaming chat
# (incremental arrival, keepalive after [DONE], HTTP/1.0), the GET endpoints,
# tokenize/detokenize, bodies beyond nginx's body buffer, engine-framed errors.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use JSON::PP;
use Test::More;
use Time::HiRes qw(time);

my $t = GlmTest->new(workers => 2)->run(http => <<'END');
    client_body_buffer_size 16k;
    client_max_body_size 4m;
END

my ($r, $j, @ev);

# ---- non-streaming chat ----

$r = $t->post('/v1/chat/completions',
              GlmTest::chat_body(content => 'hello big world'));
is($r->{status}, 200, 'chat: 200');
like($r->{headers}{'content-type'}, qr{^application/json}, 'chat: json');
is($r->{headers}{'content-length'}, length $r->{body},
   'chat: Content-Length');
ok(!$r->{headers}{'transfer-encoding'}, 'chat: not chunked');
$j = $r->{json};
is($j->{object}, 'chat.completion', 'chat: object');
is($j->{choices}[0]{message}{role}, 'assistant', 'chat: role');
is($j->{choices}[0]{message}{content}, 'hello big world', 'chat: echo')
    if $t->fake;

# charset in Content-Type is fine
$r = $t->post('/v1/chat/completions', GlmTest::chat_body(),
              type => 'application/json; charset=utf-8');
is($r->{status}, 200, 'chat: json with charset');

# ---- streaming chat ----

$r = $t->post('/v1/chat/completions',
              GlmTest::chat_body(content => 'one two three', stream => \1));
is($r->{status}, 200, 'stream: 200');
is($r->{headers}{'content-type'}, 'text/event-stream; charset=utf-8',
   'stream: content type');
is($r->{headers}{'cache-control'}, 'no-cache', 'stream: Cache-Control');
is($r->{headers}{'x-accel-buffering'}, 'no', 'stream: X-Accel-Buffering');
like($r->{headers}{'transfer-encoding'} // '', qr/chunked/, 'stream: chunked');
ok($r->{complete}, 'stream: final chunk');
@ev = GlmTest::sse_events($r->{body});
is($ev[-1], '[DONE]', 'stream: ends with [DONE]');
is(decode_json($ev[0])->{choices}[0]{delta}{role}, 'assistant',
   'stream: role chunk first');
is(GlmTest::sse_text($r->{body}), 'one two three', 'stream: text')
    if $t->fake;
like($r->{body}, qr/\A(data: [^\n]*\n\n)+\z/, 'stream: only data events');

# events arrive one by one, as the engine sends them
SKIP: {
    skip 'needs the fake engine', 3 unless $t->fake;

    my $s = $t->stream_open(GlmTest::chat_body(content => 'a b c d',
                                               stream => \1,
                                               fake => 'slow:300'));
    my $t0 = time();
    my $buf = GlmTest::read_until($s, qr/"content":"a"/, 5);
    my $first = time() - $t0;
    $buf = GlmTest::read_until($s, qr/"content":" d"/, 5, $buf);
    my $last = time() - $t0;
    $buf = GlmTest::read_until($s, qr/0\r\n\r\n\z/, 5, $buf);
    close $s;

    ok($first < 1.0, sprintf('stream: first word after %.2fs', $first));
    ok($last - $first > 0.6,
       sprintf('stream: words spread over %.2fs', $last - $first));
    like($buf, qr/data: \[DONE\]\n\n\r\n0\r\n\r\n\z/, 'stream: terminated');
}

# keepalive: two streams on one connection
{
    my $s = $t->connect_http;
    my $body = GlmTest::chat_body(content => 'again', stream => \1);
    my $req = GlmTest::build_request(method => 'POST',
                                     path => '/v1/chat/completions',
                                     type => 'application/json',
                                     body => $body, keepalive => 1);
    print $s $req;
    my $buf = GlmTest::read_until($s, qr/0\r\n\r\n\z/, 5);
    like($buf, qr/\[DONE\]/, 'keepalive: first stream');
    print $s $req;
    $buf = GlmTest::read_until($s, qr/0\r\n\r\n\z/, 5);
    like($buf, qr{^HTTP/1.1 200.*\[DONE\]}s,
         'keepalive: second stream on the same connection');
    close $s;
}

# HTTP/1.0: no chunked encoding, the end is the connection's close
$r = $t->post('/v1/chat/completions',
              GlmTest::chat_body(content => 'old client', stream => \1),
              version => '1.0');
is($r->{status}, 200, 'http/1.0: 200');
ok(!defined $r->{headers}{'transfer-encoding'}, 'http/1.0: not chunked');
ok(!defined $r->{headers}{'content-length'}, 'http/1.0: no length');
is((GlmTest::sse_events($r->{body}))[-1], '[DONE]',
   'http/1.0: close-delimited stream ends with [DONE]');
is(GlmTest::sse_text($r->{body}), 'old client', 'http/1.0: text')
    if $t->fake;

# ---- a body beyond client_body_buffer_size: read in turns, into memory ----

{
    my $content = join ' ', map { "w$_" } 1 .. 20000;     # ~130 KB
    my $body = GlmTest::chat_body(content => $content);
    ok(length $body > 16384 * 4, 'big body: larger than the body buffer');

    # a real model's context is shorter than this prompt: its 400 says the
    # engine got the body and counted its tokens
    my $want = $t->fake ? 200 : 400;

    $r = $t->post('/v1/chat/completions', $body);
    is($r->{status}, $want, "big body: $want");
    is($r->{json}{choices}[0]{message}{content}, $content,
       'big body: arrived intact') if $t->fake;
    # unbuffered reading (ngx_http_glm_body_read): never a temp file to
    # write and read back on the worker's event loop
    unlike($t->error_log, qr/client request body is buffered to a temporary/,
           'big body: no temp file');

    $r = $t->post('/v1/chat/completions',
                  GlmTest::chat_body(content => $content, stream => \1),
                  chunked => 1);
    is($r->{status}, $want, "big chunked body: $want");
    is(GlmTest::sse_text($r->{body}), $content, 'big chunked body: intact')
        if $t->fake;
}

# ---- the GET endpoints and tokenize ----

$r = $t->get('/v1/models');
is($r->{status}, 200, 'models: 200');
is($r->{json}{object}, 'list', 'models: list');
ok(length($r->{json}{data}[0]{id} // '') > 0, 'models: a served name');
my $model = $r->{json}{data}[0]{id};

$r = $t->post('/v1/chat/completions',
              GlmTest::chat_body(model => $model, content => 'named'));
is($r->{status}, 200, 'chat with a served model name');

$r = $t->get('/version');
is($r->{status}, 200, 'version: 200');
ok(defined $r->{json}{version}, 'version: field');

$r = $t->get('/metrics');
is($r->{status}, 200, 'metrics: 200');
like($r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4},
     'metrics: Prometheus text');
like($r->{body}, qr/^# (HELP|TYPE) /m, 'metrics: exposition format');

$r = $t->post('/tokenize', { prompt => 'hi' });
is($r->{status}, 200, 'tokenize: 200');
ok(ref $r->{json}{tokens} eq 'ARRAY' && $r->{json}{count} > 0,
   'tokenize: tokens');
my $tokens = $r->{json}{tokens};

$r = $t->post('/detokenize', { tokens => $tokens });
is($r->{status}, 200, 'detokenize: 200');
is($r->{json}{prompt}, 'hi', 'detokenize: round trip');

# ---- errors the engine frames itself pass through as they are ----

SKIP: {
    skip 'needs the fake engine', 6 unless $t->fake;

    $r = $t->post('/v1/chat/completions',
                  GlmTest::chat_body(stream => \1, fake => 'error:400'));
    is($r->{status}, 400, 'engine error: status even when streaming');
    like($r->{headers}{'content-type'}, qr{^application/json},
         'engine error: json');
    is($r->{json}{error}{code}, 400, 'engine error: body');

    $r = $t->post('/v1/chat/completions',
                  GlmTest::chat_body(fake => 'busy'));
    is($r->{status}, 503, 'engine 503 passes through');
    is($r->{headers}{'retry-after'}, '2', 'engine Retry-After passes through');
    is($r->{json}{error}{type}, 'ServiceUnavailableError', 'engine 503 body');
}

$t->finish;
done_testing();
