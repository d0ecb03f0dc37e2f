#!/usr/bin/perl
# `nginx -s reload` (SIGHUP) in the middle of a stream: the old worker keeps
# its engine channel until the stream is complete, new workers attach their
# own channels and serve new requests meanwhile, and the old worker exits
# after the last byte.  A graceful stop (SIGQUIT) also waits for the stream.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use Test::More;
use Time::HiRes qw(sleep time);

my $t = GlmTest->new(workers => 2)->run;

# Deadlines are for a stream that never ends, not for speed: the real
# engine here is an ASan build, and on a busy machine its 1000 tokens take
# tens of seconds (which also keeps the stream open across the reload).
my $patience = 300;
my $words = join ' ', map { "w$_" } 1 .. 15;
my $body = $t->fake
    ? GlmTest::chat_body(content => $words, stream => \1, fake => 'slow:100')
    : GlmTest::chat_body(content => 'Tell a long story.', stream => \1,
                         max_tokens => 1000, ignore_eos => \1);

sub stream_done {
    my ($buf, $name) = @_;
    my $r = GlmTest::parse_response($buf);
    is((GlmTest::sse_events($r->{body}))[-1], '[DONE]', "$name: [DONE]");
    ok($r->{complete}, "$name: chunked end");
    is(GlmTest::sse_text($r->{body}), $words, "$name: every word")
        if $t->fake;
    ok(!grep({ /"error"/ } GlmTest::sse_events($r->{body})),
       "$name: no error event");
}

# ---- reload ----

my $s = $t->stream_open($body);
my $buf = GlmTest::read_until($s, qr/"content":"[^"]+"/, $patience);
like($buf, qr/"content":"[^"]+"/, 'stream started');

my $t0 = time();
$t->reload;

my $r = $t->post('/v1/chat/completions',
                 GlmTest::chat_body(content => 'served meanwhile'));
is($r->{status}, 200, 'a new request during the old stream');

$buf = GlmTest::read_until($s, qr/0\r\n\r\n\z/, $patience, $buf);
close $s;
stream_done($buf, 'across reload');
ok(time() - $t0 > 1.0, 'the stream outlived the reload') if $t->fake;

# the old worker leaves once its stream is done, giving its channel back
my $deadline = time() + 10;
while (time() < $deadline) {
    last if $t->error_log =~ /gracefully shutting down.*exiting/s;
    sleep 0.05;
}
like($t->error_log, qr/gracefully shutting down.*exiting/s,
     'old worker exited gracefully');
like($t->engine_log, qr/^GONE chan=\d+$/m, 'old worker released its channel')
    if $t->fake;
ok($t->wait_health(200), 'new workers attached');

# ---- graceful stop with a stream open ----

$s = $t->stream_open($body);
$buf = GlmTest::read_until($s, qr/"content":"[^"]+"/, $patience);
kill 'QUIT', $t->{nginx_pid};
$buf = GlmTest::read_until($s, qr/0\r\n\r\n\z/, $patience, $buf);
close $s;
stream_done($buf, 'across a graceful stop');

$t->finish;
done_testing();
