#!/usr/bin/perl
# A client that goes away must cost the engine nothing more: a CANCEL for
# its (slot, gen) reaches the engine whether it left mid-stream or before
# the first byte, and a client that stops reading is cut off (and its
# request cancelled) once glm_output_limit bytes of a stream wait for it.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use Test::More;
use Time::HiRes qw(sleep time);

my $t = GlmTest->new;

plan skip_all => 'needs the fake engine (slow, stall and flood switches)'
    unless $t->fake;

$t->run(server => <<"END");
$GlmTest::LOCATIONS
        location = /small-buffer {
            glm_output_limit 256k;
            send_timeout 30s;
            glm_pass chat;
        }
END

my $words = join ' ', map { "w$_" } 1 .. 30;

# ---- mid-stream ----

{
    my $s = $t->stream_open(GlmTest::chat_body(content => $words, stream => \1,
                                               fake => 'slow:100'));
    my $buf = GlmTest::read_until($s, qr/"content":" w2"/, 5);
    like($buf, qr/"content":"w1"/, 'mid-stream: stream started');
    close $s;

    my $line = $t->wait_engine_log(qr/^(CANCEL chan=\d+ slot=\d+ gen=\d+ \w+)$/m);
    is($line && ($line =~ /(\w+)$/)[0], 'active',
       'mid-stream: CANCEL of the running request reached the engine');

    my ($slot, $gen) = $t->engine_log
        =~ /SUBMIT chan=\d+ slot=(\d+) gen=(\d+) op=1/;
    like($line // '', qr/slot=$slot gen=$gen /, 'mid-stream: same slot, gen');

    like($t->error_log, qr/client prematurely closed connection/,
         'mid-stream: the worker saw the client go');
}

# ---- before the response head ----

{
    my $before = () = $t->engine_log =~ /^CANCEL .* active$/mg;
    my $bodies = () = $t->engine_log =~ /^BODY /mg;

    my $s = $t->stream_open(GlmTest::chat_body(stream => \1,
                                               fake => 'nohead'));
    my $deadline = time() + 5;
    while (time() < $deadline) {
        last if (() = $t->engine_log =~ /^BODY /mg) > $bodies;
        sleep 0.02;
    }
    ok((() = $t->engine_log =~ /^BODY /mg) > $bodies,
       'before head: the engine has the request');
    close $s;

    $deadline = time() + 5;
    my $after = $before;
    while (time() < $deadline && $after == $before) {
        $after = () = $t->engine_log =~ /^CANCEL .* active$/mg;
        sleep 0.02;
    }
    is($after, $before + 1, 'before head: CANCEL reached the engine');
}

# ---- the worker goes on, and stale slots are reused safely ----

{
    my $r = $t->post('/v1/chat/completions',
                     GlmTest::chat_body(content => 'still here', stream => \1));
    is(GlmTest::sse_text($r->{body}), 'still here', 'after aborts: stream ok');
}

# ---- a client that stops reading ----

{
    my $before = () = $t->engine_log =~ /^CANCEL .* active$/mg;
    my $s = $t->connect_http;
    print $s GlmTest::build_request(
        method => 'POST', path => '/small-buffer', type => 'application/json',
        body => GlmTest::chat_body(stream => \1, fake => 'flood:33554432'));

    # read nothing: the socket buffers fill, then the worker's
    my $deadline = time() + 20;
    my $after = $before;
    while (time() < $deadline && $after == $before) {
        $after = () = $t->engine_log =~ /^CANCEL .* active$/mg;
        sleep 0.05;
    }
    is($after, $before + 1, 'slow reader: request cancelled');
    like($t->error_log, qr/more than 262144 bytes of response wait for the client/,
         'slow reader: logged');

    # the worker closes the connection by itself, without the client having
    # to stir first: the request is logged, then what was sent drains and
    # EOF follows
    $deadline = time() + 5;
    my $access = '';
    while (time() < $deadline) {
        $access = GlmTest::read_file($t->dir . '/access.log');
        last if $access =~ m{"POST /small-buffer };
        sleep 0.05;
    }
    like($access, qr{"POST /small-buffer }, 'slow reader: request finished');
    my ($buf, $n, $total) = ('', 1, 0);
    $deadline = time() + 10;
    while (time() < $deadline) {
        $n = GlmTest::read_some($s, \$buf, 1);
        last if defined $n && $n == 0;
        $total += length $buf if $n;
        $buf = '';
    }
    is($n, 0, 'slow reader: connection closed by the server');
    ok($total > 0 && $total < 33554432, 'slow reader: output was cut');
    close $s;

    my $r = $t->post('/v1/chat/completions',
                     GlmTest::chat_body(content => 'next', stream => \1));
    is(GlmTest::sse_text($r->{body}), 'next', 'slow reader: others unaffected');
}

# ---- a JSON answer beyond the limit: whole, from a temporary file ----

# glm_output_limit bounds what a slow reader leaves in memory; a JSON body
# comes in one burst at the end of generation, and what is beyond the limit
# waits in a file, not cut and not a 502 (a body over several rings' worth
# to spill more than once)
for my $size (1048576, 3 * 1048576 + 7) {
    my $r = $t->post('/small-buffer', GlmTest::chat_body(fake => "flood:$size"));
    is($r->{status}, 200, "large JSON $size: 200");
    is($r->{headers}{'content-length'}, length $r->{body},
       "large JSON $size: its length");
    is(length($r->{json}{choices}[0]{message}{content} // ''), $size,
       "large JSON $size: whole");
    is($r->{json}{choices}[0]{message}{content}, 'x' x $size,
       "large JSON $size: intact");
}

{
    my $r = $t->post('/v1/chat/completions',
                     GlmTest::chat_body(fake => 'flood:1048576'));
    is(length($r->{json}{choices}[0]{message}{content} // ''), 1048576,
       'large JSON: within the default limit it passes');
}

$t->finish;
done_testing();
