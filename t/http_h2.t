#!/usr/bin/perl
# HTTP/2 (cleartext, prior knowledge) through curl: JSON and SSE responses
# ride h2 streams, and a stream reset by the client cancels the request in
# the engine (ngx_http_test_reading does not see h2 resets; the h2 layer
# terminates the request and the pool cleanup sends the CANCEL).

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use JSON::PP;
use Test::More;
use Time::HiRes qw(sleep time);

my $curl = `command -v curl 2>/dev/null`;
chomp $curl;
plan skip_all => 'curl not found' unless $curl;
plan skip_all => 'curl without HTTP/2' unless `$curl --version` =~ /HTTP2/;

my $t = GlmTest->new->run(http2 => 1);
my $url = 'http://127.0.0.1:' . $t->h2_port . '/v1/chat/completions';

sub curl_post {
    my ($body, @opt) = @_;
    my $file = $t->dir . '/h2-body.json';
    GlmTest::write_file($file, $body);
    my $out = `$curl -s -N --http2-prior-knowledge -D - @opt -H 'Content-Type: application/json' --data-binary \@$file '$url' 2>&1`;
    my ($head, $rest) = split /\r\n\r\n/, $out, 2;
    my ($status) = ($head // '') =~ m{^HTTP/2 (\d+)};
    return ($status // 0, $rest // '', $head // '');
}

my ($status, $body, $head) = curl_post(GlmTest::chat_body(content => 'over h2'));
is($status, 200, 'h2 chat: 200');
my $j = eval { decode_json($body) } // {};
is($j->{object}, 'chat.completion', 'h2 chat: json');
is($j->{choices}[0]{message}{content}, 'over h2', 'h2 chat: echo') if $t->fake;

($status, $body, $head) = curl_post(GlmTest::chat_body(content => 'h2 stream',
                                                      stream => \1));
is($status, 200, 'h2 stream: 200');
like($head, qr{content-type: text/event-stream}i, 'h2 stream: SSE');
is((GlmTest::sse_events($body))[-1], '[DONE]', 'h2 stream: [DONE]');
is(GlmTest::sse_text($body), 'h2 stream', 'h2 stream: text') if $t->fake;

# a body larger than one turn of reading (256 KB) and of the submit ring
# (512 KB): the h2 layer hands it over unbuffered, in pieces
my $big = join ' ', map { "h$_" } 1 .. 90_000;
($status, $body) = curl_post(GlmTest::chat_body(content => $big));
is($status, $t->fake ? 200 : 400, 'h2 large body: answered');
ok((eval { decode_json($body)->{choices}[0]{message}{content} } // '') eq $big,
   'h2 large body: intact') if $t->fake;

($status, $body) = curl_post('{"messages":[]}');
is($status, 400, 'h2 error: 400');
is(eval { decode_json($body)->{error}{param} }, 'messages', 'h2 error: body');

SKIP: {
    skip 'needs the fake engine', 2 unless $t->fake;

    ($status, $body) = curl_post(
        GlmTest::chat_body(content => join(' ', 1 .. 40), stream => \1,
                           fake => 'slow:100'),
        '--max-time', '0.7');
    like($body, qr/"content":"1"/, 'h2 abort: stream had started');
    ok($t->wait_engine_log(qr/^CANCEL .* active$/m),
       'h2 abort: CANCEL reached the engine');
}

$t->finish;
done_testing();
