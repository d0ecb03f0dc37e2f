#!/usr/bin/perl
# Every vLLM request field honoured or refused (README: "Request fields,
# field by field").  Each refused field: its 400 with vLLM's message (ours
# where vLLM has none).  The honoured ones, by what they must change in the
# answer: request_id and X-Request-Id, return_token_ids,
# return_tokens_as_token_ids, logprob_token_ids, continuous_usage_stats,
# stream_interval, echo, allowed_token_ids, bad_words,
# truncate_prompt_tokens, prompt_logprobs, reasoning_effort,
# return_prompt_text, cache_salt (in /metrics' prefix cache counters) and a
# trusted request chat_template.  With the fake engine, the X-Request-Id
# header's way to the engine: the first ring record, ahead of a body the
# ring cuts into several.

use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";

use GlmTest;
use JSON::PP;
use Test::More;

binmode(Test::More->builder->$_, ':encoding(UTF-8)')
    for qw(output failure_output todo_output);

my $t = GlmTest->new;
my $chat = '/v1/chat/completions';
my $r;

if ($t->fake) {
    $t->run(server => $GlmTest::LOCATIONS);
    $r = $t->post($chat, GlmTest::chat_body(), headers => [ 'X-Request-Id: trace-42' ]);
    is($r->{status}, 200, 'X-Request-Id: 200');
    ok($t->wait_engine_log(qr/REQUEST_ID chan=\d+ slot=\d+ gen=\d+ id=(trace-42)$/m),
       'X-Request-Id reaches the engine with the request');
    $r = $t->post($chat, GlmTest::chat_body(), headers => [ 'X-Request-Id: ' . 'x' x 257 ]);
    is($r->{status}, 400, 'X-Request-Id over 256 bytes: 400');
    is($r->{json}{error}{message}, 'The X-Request-Id header is longer than 256 bytes',
       '... saying so');
    $t->finish;

    # the id rides in the first record, before the body: a small ring cuts
    # a body into records around a 256-byte id, and both arrive whole
    my $u = GlmTest->new(engine_args => [ '--submit-size', 4096 ]);
    $u->run(http => "    client_max_body_size 1m;\n");
    my $id = join '', map { chr(97 + $_ % 26) } 1 .. 256;
    for my $n (1500, 2900, 3400) {
        my $content = join '', map { chr(65 + $_ % 26) } 1 .. $n;
        $r = $u->post($chat, GlmTest::chat_body(content => $content),
                      headers => [ "X-Request-Id: $id" ]);
        is($r->{json}{choices}[0]{message}{content}, $content,
           "a $n-byte prompt after a 256-byte X-Request-Id arrives intact");
    }
    my @ids = $u->engine_log =~ /^REQUEST_ID .* id=(\S+)$/mg;
    is(scalar(grep { $_ eq $id } @ids), 3, '... and so does the id, each time');
    my @records = ($u->engine_log =~ /^BODY .* records=(\d+)$/mg)[-2 .. -1];
    ok(!grep({ $_ < 2 } @records), '... in two records or more');
    $u->finish;
    done_testing;
    exit;
}

$t->run(server => $GlmTest::LOCATIONS);

sub body {
    my (%o) = @_;
    return encode_json({ messages => [ { role => 'user', content => 'hello there' } ],
                         max_tokens => 8, %o });
}

sub refused {
    my ($body, $message, $param, $name) = @_;
    my $res = $t->post($chat, ref $body ? encode_json($body) : $body);
    is($res->{status}, 400, "$name: 400");
    if (ref $message) {
        like($res->{json}{error}{message} // '', $message, "$name: message");
    } else {
        is($res->{json}{error}{message}, $message, "$name: message");
    }
    is($res->{json}{error}{param}, $param, "$name: param");
}

my @user = (messages => [ { role => 'user', content => 'hi' } ]);

# ---- refused ----

refused({ @user, chat_template => '{{ messages }}' },
        'Chat template is passed with request, but --trust-request-chat-template is not set.'
        . ' Refused request with untrusted chat template.', undef, 'chat_template');
refused({ @user, chat_template_kwargs => { chat_template => '{{ messages }}' } },
        'Chat template is passed with request, but --trust-request-chat-template is not set.'
        . ' Refused request with untrusted chat template.', undef,
        'chat_template_kwargs.chat_template');
refused({ @user, priority => 5 }, 'Got priority 5 but Priority scheduling is not enabled.',
        undef, 'priority');
refused({ @user, logits_processors => ['my_module.MyProcessor'] },
        'The `logits_processors` argument is not supported by this server. See'
        . ' --logits-processor-pattern engine argugment for more information.', undef,
        'logits_processors');
refused({ @user, reasoning_effort => 'extreme' },
        "reasoning_effort: Input should be 'none', 'minimal', 'low', 'medium', 'high',"
        . " 'xhigh' or 'max'", 'reasoning_effort', 'reasoning_effort');
refused({ @user, stream => \1, prompt_logprobs => 1 },
        '`prompt_logprobs` are not available when `stream=True`.', 'prompt_logprobs',
        'prompt_logprobs with stream');
refused({ @user, prompt_logprobs => -2 }, '`prompt_logprobs` must be a positive value or -1.',
        'prompt_logprobs', 'prompt_logprobs negative');
refused({ @user, prompt_logprobs => 21 },
        'Requested prompt logprobs of 21, which is greater than max allowed: 20',
        'prompt_logprobs', 'prompt_logprobs above --max-logprobs');
refused({ @user, logprobs => \1, top_logprobs => -1 },
        qr/^Requested sample logprobs of \d+, which is greater than max allowed: 20$/,
        'top_logprobs', 'top_logprobs -1 (the whole vocabulary)');
refused({ @user, top_logprobs => 2 },
        'when using `top_logprobs`, `logprobs` must be set to true.', 'top_logprobs',
        'top_logprobs without logprobs');
refused({ @user, allowed_token_ids => [] }, 'allowed_token_ids is not None and empty!',
        'allowed_token_ids', 'allowed_token_ids empty');
refused({ @user, allowed_token_ids => [ 1, 99999999 ] },
        qr/^allowed_token_ids contains out-of-vocab token id!/, 'allowed_token_ids',
        'allowed_token_ids out of vocabulary');
refused({ @user, logprobs => \1, logprob_token_ids => [] },
        '`logprob_token_ids` must not be an empty list.', 'logprob_token_ids',
        'logprob_token_ids empty');
refused({ @user, logprob_token_ids => [1] },
        'when using `logprob_token_ids`, `logprobs` must be set to true.',
        'logprob_token_ids', 'logprob_token_ids without logprobs');
refused({ @user, cache_salt => '' },
        "Parameter 'cache_salt' must be a non-empty string if provided.", 'cache_salt',
        'cache_salt empty');
refused({ @user, use_beam_search => \1 }, qr/^beam search is not supported/,
        'use_beam_search', 'use_beam_search');
refused({ @user, watermarking => \1 }, qr/^watermarking is not supported/, 'watermarking',
        'watermarking');
refused({ @user, repetition_detection => { max_pattern_size => 4 } },
        qr/^repetition_detection is not supported/, 'repetition_detection',
        'repetition_detection');
refused({ @user, stream_options => { include_usage => \1 } },
        'Stream options can only be defined when `stream=True`.', 'stream_options',
        'stream_options without stream');
refused({ @user, truncate_prompt_tokens => 5000, max_tokens => 8 },
        'truncate_prompt_tokens=5000 cannot be greater than max_model_len - max_tokens = 4088.'
        . ' Please request a smaller truncation size.', 'truncate_prompt_tokens',
        'truncate_prompt_tokens above the context');
refused({ @user, truncate_prompt_tokens => 3, truncation_side => 'middle' },
        "truncation_side: Input should be 'left' or 'right'", 'truncation_side',
        'truncation_side');
refused({ @user, media_io_kwargs => { image => { size => 3 } } },
        qr/^media_io_kwargs: only \{"video": \{"num_frames": N\}\} is supported/,
        'media_io_kwargs', 'media_io_kwargs other than video.num_frames');
refused({ @user, request_id => 'r' x 257 }, qr/^'request_id' must be a string of at most 256/,
        'request_id', 'request_id too long');

# messages GLM's template would drop without a word
refused({ messages => [ { role => 'user', content => 'a' }, { content => 'b' } ] },
        "messages[1] has no 'role': give one of system, user, assistant or tool", 'messages',
        'message without a role');
refused({ messages => [ { role => 7, content => 'a' } ] },
        "messages[0]: 'role' must be a string: system, user, assistant or tool", 'messages',
        'numeric role');
refused({ messages => [ { role => 'user', content => 'a' }, { role => 'bot', content => 'b' } ] },
        "messages[1]: unknown role 'bot': this model's chat template renders system, user,"
        . " assistant and tool messages only", 'messages', 'unknown role');
refused({ messages => [ { role => 'user', content => [ { type => 'banana' } ] } ] },
        "messages[0].content[0]: Unsupported chat content part type: 'banana'. Supported"
        . ' types: image_url, input_text, output_text, refusal, text, thinking, video_url.',
        'messages', 'unknown content part type');
refused({ messages => [ { role => 'user', content => [ { type => 'text', text => 'a' },
                                                       { type => 'input_audio' } ] } ] },
        qr/^messages\[0\]\.content\[1\]: content parts of type 'input_audio' are not supported/,
        'messages', 'audio content part');
refused({ messages => [ { role => 'user', content => [ { text => 'untyped' } ] } ] },
        "messages[0].content[0]: Missing 'type' field in multimodal part.", 'messages',
        'content part without a type');
refused({ messages => [ { role => 'user', content => 42 } ] },
        "messages[0]: 'content' must be a string, a list of content parts, or null",
        'messages', 'numeric content');

# the text-like parts vLLM reads as text render as text
{
    my @parts = map { { type => $_->[0], $_->[1] => 'Paris' } }
                ([ 'text', 'text' ], [ 'input_text', 'text' ], [ 'refusal', 'refusal' ]);
    my @counts = map {
        $t->post('/tokenize', encode_json({ messages => [ { role => 'user',
                                                          content => [ $_ ] } ] }))
          ->{json}{count}
    } @parts;
    is("@counts", join(' ', ($counts[0]) x 3), 'input_text and refusal parts render as text');
}

# ---- honoured ----

# request_id, X-Request-Id
$r = $t->post($chat, body(request_id => 'my-id'));
is($r->{json}{id}, 'chatcmpl-my-id', 'request_id names the response');
$r = $t->post($chat, body(request_id => 'my-id'), headers => [ 'X-Request-Id: hdr-7' ]);
is($r->{json}{id}, 'chatcmpl-hdr-7', 'X-Request-Id wins over request_id');
$r = $t->post('/v1/completions', '{"prompt":"a","max_tokens":1}',
              headers => [ 'X-Request-Id: hdr-8' ]);
is($r->{json}{id}, 'cmpl-hdr-8', 'completions: cmpl-<X-Request-Id>');

# return_token_ids, streaming and not
my $msgs = [ { role => 'user', content => 'Name a city.' } ];
my $prompt_ids = $t->post('/tokenize', encode_json({ messages => $msgs }))->{json}{tokens};
my %greedy = (messages => $msgs, max_tokens => 10, temperature => 0, ignore_eos => \1);
$r = $t->post($chat, encode_json({ %greedy, return_token_ids => \1 }));
my $j = $r->{json} // {};
is("@{ $j->{prompt_token_ids} // [] }", "@$prompt_ids", 'return_token_ids: prompt_token_ids');
my @out_ids = @{ $j->{choices}[0]{token_ids} // [] };
is(scalar @out_ids, 10, 'return_token_ids: the choice\'s token_ids');
$r = $t->post($chat, encode_json({ %greedy, return_token_ids => \1, stream => \1 }));
my @ev = map { decode_json($_) } grep { $_ ne '[DONE]' } GlmTest::sse_events($r->{body});
is("@{ $ev[0]{prompt_token_ids} // [] }", "@$prompt_ids",
   'stream: the role chunk carries prompt_token_ids');
is(join(' ', map { @{ $_->{choices}[0]{token_ids} // [] } } @ev[1 .. $#ev]), "@out_ids",
   'stream: the chunks\' token_ids are the body\'s');

# return_tokens_as_token_ids, logprob_token_ids
$r = $t->post($chat, encode_json({ %greedy, logprobs => \1, top_logprobs => 2,
                                   return_tokens_as_token_ids => \1 }));
my $lp = $r->{json}{choices}[0]{logprobs}{content} // [];
is(join(' ', map { $_->{token} } @$lp), join(' ', map { "token_id:$_" } @out_ids),
   'return_tokens_as_token_ids: logprob tokens are token_id:N');
$r = $t->post($chat, encode_json({ %greedy, logprobs => \1, logprob_token_ids => [ 5, 9, 11 ],
                                   return_tokens_as_token_ids => \1 }));
$lp = $r->{json}{choices}[0]{logprobs}{content} // [];
is(scalar(grep { join(',', map { $_->{token} } @{ $_->{top_logprobs} }) eq
                 'token_id:5,token_id:9,token_id:11' } @$lp), 10,
   'logprob_token_ids: those ids, in order, at every position');

# continuous_usage_stats, stream_interval
$r = $t->post($chat, encode_json({ %greedy, stream => \1,
                                   stream_options => { include_usage => \1,
                                                       continuous_usage_stats => \1 } }));
@ev = map { decode_json($_) } grep { $_ ne '[DONE]' } GlmTest::sse_events($r->{body});
is(scalar(grep { defined $_->{usage} } @ev), scalar @ev,
   'continuous_usage_stats: every chunk has usage');
is($ev[0]{usage}{completion_tokens}, 0, '... the role chunk 0 tokens');
is($ev[-2]{usage}{completion_tokens}, 10, '... the last choice chunk all 10');
is($ev[-2]{usage}{prompt_tokens}, scalar @$prompt_ids, '... prompt_tokens');
$r = $t->post($chat, encode_json({ %greedy, stream => \1, stream_interval => 4 }));
my @plain = grep { $_ ne '[DONE]' } GlmTest::sse_events(
    $t->post($chat, encode_json({ %greedy, stream => \1 }))->{body});
@ev = grep { $_ ne '[DONE]' } GlmTest::sse_events($r->{body});
is(GlmTest::sse_text($r->{body}), GlmTest::sse_text(join '', map { "data: $_\n\n" } @plain),
   'stream_interval 4: the same text');
ok(@ev < @plain, 'stream_interval 4: fewer chunks (' . scalar(@ev) . ' < ' . scalar(@plain)
   . ')');

# echo: the last message when it is the answer's role
{
    my %cont = (messages => [ { role => 'user', content => 'Hi' },
                              { role => 'assistant', content => 'Well,' } ],
                add_generation_prompt => \0, continue_final_message => \1,
                max_tokens => 4, temperature => 0);
    my $plain_c = $t->post($chat, encode_json(\%cont))->{json}{choices}[0]{message}{content};
    $r = $t->post($chat, encode_json({ %cont, echo => \1 }));
    is($r->{json}{choices}[0]{message}{content}, 'Well,' . ($plain_c // ''),
       'echo: the last message, then the answer');
    $r = $t->post($chat, encode_json({ %cont, echo => \1, stream => \1 }));
    @ev = map { decode_json($_) } grep { $_ ne '[DONE]' } GlmTest::sse_events($r->{body});
    is($ev[1]{choices}[0]{delta}{content}, 'Well,', 'echo, stream: a chunk of it after the role');
    $r = $t->post($chat, body(echo => \1, temperature => 0));
    my $same = $t->post($chat, body(temperature => 0));
    is($r->{json}{choices}[0]{message}{content}, $same->{json}{choices}[0]{message}{content},
       'echo: nothing when the last message is the user\'s');
}

# allowed_token_ids
$r = $t->post($chat, encode_json({ messages => $msgs, max_tokens => 12, ignore_eos => \1,
                                   temperature => 1, seed => 3, return_token_ids => \1,
                                   allowed_token_ids => [ 17, 42, 99 ] }));
my @got = @{ $r->{json}{choices}[0]{token_ids} // [] };
is(scalar(@got), 12, 'allowed_token_ids: 12 tokens');
is(scalar(grep { $_ != 17 && $_ != 42 && $_ != 99 } @got), 0,
   "allowed_token_ids: only those (@got)");

# bad_words: a one-token word a greedy answer uses, then never (vLLM bans
# the word alone and, when that is another token of the same length, after
# a space)
{
    my ($word, $id, $prompt);
    my $tokenize = sub {
        return $t->post('/tokenize', encode_json({ prompt => $_[0] }))->{json}{tokens};
    };
    for my $p ('The quick brown fox jumps over the lazy dog.', 'Hello', 'x', 'def f(n):') {
        my $res = $t->post('/v1/completions', encode_json({
            prompt => $p, max_tokens => 32, temperature => 0, return_token_ids => \1 }));
        for my $tok (@{ $res->{json}{choices}[0]{token_ids} // [] }) {
            my $text = $t->post('/detokenize', encode_json({ tokens => [$tok] }))
                         ->{json}{prompt};
            (my $w = $text) =~ s/^\s+//;
            next unless length $w;
            my ($plain, $spaced) = ($tokenize->($w), $tokenize->(" $w"));
            if ((@$plain == 1 && $plain->[0] == $tok)
                || (@$spaced == 1 && $spaced->[0] == $tok && @$plain == 1))
            {
                ($word, $id, $prompt) = ($w, $tok, $p);
                last;
            }
        }
        last if defined $word;
    }
    ok(defined $word, 'bad_words: a greedy answer has a one-token word');
    my %g = (prompt => $prompt // 'x', max_tokens => 32, temperature => 0,
             return_token_ids => \1);
    my @before = @{ $t->post('/v1/completions', encode_json(\%g))
                      ->{json}{choices}[0]{token_ids} // [] };
    my @ids = @{ $t->post('/v1/completions', encode_json({ %g, bad_words => [ $word // 'x' ] }))
                   ->{json}{choices}[0]{token_ids} // [] };
    ok(scalar(grep { $_ == ($id // -1) } @before), "bad_words: '" . ($word // '') . "' ($id)"
       . ' is in the answer without them');
    is(scalar(grep { $_ == ($id // -1) } @ids), 0, 'bad_words: and never with them');
    is(scalar @ids, 32, 'bad_words: the answer goes on');
}

# truncate_prompt_tokens: the last N prompt tokens, or the first N
{
    my %long = (messages => [ { role => 'user', content => 'one two three four five six' } ],
                max_tokens => 3, temperature => 0, return_token_ids => \1);
    my $all = $t->post('/tokenize', encode_json({ messages => $long{messages} }))->{json}{tokens};
    $r = $t->post($chat, encode_json({ %long, truncate_prompt_tokens => 5 }));
    is("@{ $r->{json}{prompt_token_ids} // [] }", "@{$all}[-5 .. -1]",
       'truncate_prompt_tokens 5: the last 5 prompt tokens');
    is($r->{json}{usage}{prompt_tokens}, 5, '... usage counts 5');
    $r = $t->post($chat, encode_json({ %long, truncate_prompt_tokens => 5,
                                       truncation_side => 'right' }));
    is("@{ $r->{json}{prompt_token_ids} // [] }", "@{$all}[0 .. 4]",
       'truncation_side right: the first 5');
    my $cut = $t->post('/v1/completions', encode_json({
        prompt => 'one two three four five six', truncate_prompt_tokens => 3,
        max_tokens => 4, temperature => 0 }))->{json}{choices}[0]{text};
    my $ids6 = $t->post('/tokenize', '{"prompt":"one two three four five six"}')->{json}{tokens};
    my $same = $t->post('/v1/completions', encode_json({
        prompt => [ @{$ids6}[-3 .. -1] ], max_tokens => 4, temperature => 0 }))
        ->{json}{choices}[0]{text};
    is($cut, $same, 'completions: a cut prompt answers as its last 3 ids do');
}

# prompt_logprobs in chat (their values: t/http_completions.t, against transformers)
$r = $t->post($chat, encode_json({ %greedy, prompt_logprobs => 2 }));
my $pl = $r->{json}{prompt_logprobs} // [];
is(scalar @$pl, scalar @$prompt_ids, 'prompt_logprobs: one per prompt token');
ok(!defined $pl->[0] && ref $pl->[1] eq 'HASH' && exists $pl->[1]{ $prompt_ids->[1] },
   'prompt_logprobs: null, then maps holding each prompt token');

# reasoning_effort none: thinking off, as enable_thinking false
{
    my $none = $t->post('/tokenize', encode_json({ messages => $msgs,
                                                  reasoning_effort => 'none' }))->{json};
    my $off = $t->post('/tokenize', encode_json({ messages => $msgs,
        chat_template_kwargs => { enable_thinking => \0 } }))->{json};
    my $on = $t->post('/tokenize', encode_json({ messages => $msgs,
                                                reasoning_effort => 'high' }))->{json};
    is("@{ $none->{tokens} }", "@{ $off->{tokens} }",
       'reasoning_effort none renders the no-thinking prompt');
    is("@{ $on->{tokens} }", "@$prompt_ids", 'reasoning_effort high: the thinking prompt');
    my $kw = $t->post('/tokenize', encode_json({ messages => $msgs, reasoning_effort => 'none',
        chat_template_kwargs => { enable_thinking => \1 } }))->{json};
    is("@{ $kw->{tokens} }", "@$prompt_ids", '... unless chat_template_kwargs says otherwise');
}

# return_prompt_text
$r = $t->post($chat, encode_json({ %greedy, return_prompt_text => \1 }));
my $ptext = $r->{json}{prompt_text} // '';
is("@{ $t->post('/tokenize', encode_json({ prompt => $ptext }))->{json}{tokens} }",
   "@$prompt_ids", 'return_prompt_text: the rendered prompt, which tokenizes to the prompt');

# cache_salt: blocks shared only under the same salt (vllm:prefix_cache_hits)
{
    my $hits = sub {
        my $m = $t->get('/metrics')->{body};
        return $m =~ /^vllm:prefix_cache_hits_total\{[^}]*\} (\d+)/m ? $1 : -1;
    };
    my $long = 'The same long system prompt, again and again. ' x 6;
    my %p = (messages => [ { role => 'system', content => $long },
                           { role => 'user', content => 'salted?' } ], max_tokens => 1);
    $t->post($chat, encode_json(\%p));
    my $h0 = $hits->();
    $t->post($chat, encode_json({ %p, cache_salt => 'tenant-a' }));
    my $h1 = $hits->();
    is($h1, $h0, 'cache_salt: a new salt finds nothing cached');
    $t->post($chat, encode_json({ %p, cache_salt => 'tenant-a' }));
    my $h2 = $hits->();
    ok($h2 > $h1, 'cache_salt: the same salt shares its blocks');
    $t->post($chat, encode_json({ %p, cache_salt => 'tenant-b' }));
    is($hits->(), $h2, 'cache_salt: another salt does not');
    $t->post($chat, encode_json(\%p));
    ok($hits->() > $h2, 'without a salt the unsalted blocks are shared as before');
}

# a trusted request chat_template
{
    my $cmd = $t->{engine_cmd};
    $t->kill_engine;
    $t->{engine_cmd} = "$cmd --trust-request-chat-template";
    $t->start_engine;
    $t->wait_health(200);
    my $tpl = '{% for m in messages %}<<{{ m.content }}>>{% endfor %}';
    $r = $t->post($chat, encode_json({ messages => $msgs, chat_template => $tpl,
                                       max_tokens => 1, return_prompt_text => \1 }));
    is($r->{status}, 200, '--trust-request-chat-template: 200');
    is($r->{json}{prompt_text}, '<<Name a city.>>', '... the request\'s template renders');
}

$t->finish;
done_testing;
