#!/usr/bin/perl
# `make run` (conf.d/run.sh) supervises the engine: one killed with SIGKILL
# is started again, the restart is logged with how the engine ended, and
# nginx serves from the new engine; TERM then stops nginx and the engine
# and starts nothing again.  run.sh runs build/glm-engine (the real engine,
# not the ASan build), so this runs only where GLM_TEST_ENGINE is set, on
# its own port and RUN_DIR.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use POSIX qw(WNOHANG setpgid);
use Test::More;
use Time::HiRes qw(sleep time);

# run.conf.in starts two workers: wait_health asks each of them
my $t = GlmTest->new(workers => 2);

plan skip_all => 'needs the real engine (GLM_TEST_ENGINE): run.sh runs '
                 . 'build/glm-engine' if $t->fake;
plan skip_all => "build/glm-engine is missing"
    unless -x "$GlmTest::REPO/build/glm-engine";

my $dir = $t->dir;
my $log = "$dir/run.log";

# run.sh in a process group of its own, so that a failing test can take
# down whatever it started
my $run = fork() // die "fork: $!";
if ($run == 0) {
    setpgid(0, 0);
    $ENV{PORT} = $t->port;
    $ENV{RUN_DIR} = $dir;
    # a test makes no system user: as root the engine drops to nobody
    $ENV{ENGINE_USER} = 'nobody';
    open STDIN, '<', '/dev/null';
    open STDOUT, '>', $log;
    open STDERR, '>&', \*STDOUT;
    exec 'sh', "$GlmTest::REPO/conf.d/run.sh" or POSIX::_exit(127);
}

END {
    if ($run) {
        kill 'TERM', $run;
        my $deadline = time() + 30;
        sleep 0.05 while waitpid($run, WNOHANG) == 0 && time() < $deadline;
        kill 'KILL', -$run;
        waitpid($run, 0);
    }
}

# run.sh reaped once, its status kept: both wait_for's check and a wait for
# its exit go through here, so neither can take the other's reap
my $run_status;
sub run_exited {
    $run_status = $? if !defined $run_status && waitpid($run, WNOHANG) > 0;
    return defined $run_status;
}

sub wait_for {
    my ($what, $cond, $timeout) = @_;
    my $deadline = time() + ($timeout // 60);
    while (time() < $deadline) {
        my $v = $cond->();
        return $v if $v;
        if (run_exited()) {
            $run = 0;
            die "run.sh exited while waiting for $what:\n"
                . GlmTest::read_file($log);
        }
        sleep 0.05;
    }
    die "timed out waiting for $what:\n" . GlmTest::read_file($log);
}

sub engine_pid {
    my $p = GlmTest::read_file("$dir/engine.pid");
    return $p =~ /^(\d+)$/ ? $1 : undef;
}

sub parent_of {
    my ($pid) = @_;
    my $stat = GlmTest::read_file("/proc/$pid/stat");
    return $stat =~ /\) \S+ (\d+)/ ? $1 : -1;
}

sub alive { kill 0, $_[0] }

# ---- start ----

# make may have something to build first
my $first = wait_for('the first engine', \&engine_pid, 600);
is(parent_of($first), $run, 'engine.pid names run.sh\'s child');
# nginx writes its pid once it listens
my $nginx = wait_for('nginx.pid', sub {
    GlmTest::read_file("$dir/nginx.pid") =~ /^(\d+)/ ? $1 : undef }, 120);
eval { $t->wait_health(200, 120) };
is($@, '', 'run.sh serves: /health 200');

# both workers on the first engine, so that both see it go (on a busy
# machine the second may still be connecting when /health first says 200)
wait_for('both workers on the first engine', sub {
    my %w = GlmTest::read_file($log) =~ /^glm-engine: worker (\d+) \(uid \d+\) on channel (\d+)$/mg;
    keys %w >= 2 }, 120);

# ---- kill -9 the engine ----

kill 'KILL', $first;

my $line = wait_for('the restart line', sub {
    GlmTest::read_file($log) =~ /^(run: the engine \(pid $first\) .*)$/m
        ? $1 : undef });
like($line, qr/was killed by SIGKILL; restarting it in 1 s$/,
     'the restart is logged with the signal');

my $second = wait_for('a new engine', sub {
    my $p = engine_pid();
    $p && $p != $first ? $p : undef });
is(parent_of($second), $run, 'the new engine is run.sh\'s child');

# both workers have seen the old engine go, so a 200 now is the new one's
wait_for('both workers to lose the engine', sub {
    my $n = () = GlmTest::read_file("$dir/logs/error.log")
                 =~ /engine pid $first lost/g;
    $n >= 2 });
eval { $t->wait_health(200, 120) };
is($@, '', '/health 200 again');

my $r = $t->post('/v1/chat/completions',
                 GlmTest::chat_body(max_tokens => 2), timeout => 120);
is($r->{status}, 200, 'a chat completion from the new engine');
ok(alive($nginx), 'the same nginx');

# ---- TERM stops everything ----

kill 'TERM', $run;
wait_for('run.sh to exit', \&run_exited, 60);
$run = 0;
is($run_status, 0, 'run.sh exits 0 on TERM');
ok(!alive($second), 'the engine is gone');
ok(!alive($nginx), 'nginx is gone');

my $restarts = () = GlmTest::read_file($log) =~ /^run: the engine /mg;
is($restarts, 1, 'no restart after TERM');

my @bad = grep { /\[(alert|crit|emerg)\]/ }
          split /\n/, GlmTest::read_file("$dir/logs/error.log");
ok(!@bad, 'no alerts in error.log') or diag(join "\n", @bad);

done_testing();
