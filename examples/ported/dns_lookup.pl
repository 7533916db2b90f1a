#!/usr/bin/perl
# Parallel DNS lookups with AnyEvent::DNS.  Twin: dns_lookup.py.
# usage: perl dns_lookup.pl RESOLV_CONF DOMAIN
# RESOLV_CONF names the servers to ask (Perl's resolver talks to port 53 only).
use strict;
use warnings;
use AnyEvent;
use AnyEvent::DNS;

$| = 1; # print each line at once

my ($conf, $domain) = @ARGV;

# a resolver configured from the given file replaces the default one
my $resolver = new AnyEvent::DNS;
open my $fh, "<", $conf or die "$conf: $!\n";
$resolver->parse_resolv_conf (do { local $/; <$fh> });
$AnyEvent::DNS::RESOLVER = $resolver;

my %answer;
my $done = AE::cv;

# start one query; begin/end count the outstanding ones
sub lookup {
   my ($what, $query, @args) = @_;
   $done->begin;
   $query->(@args, sub {
      $answer{$what} = [@_]; # the callback receives the results as a list
      $done->end;
   });
}

lookup a       => \&AnyEvent::DNS::a,    "www.$domain";
lookup aaaa    => \&AnyEvent::DNS::aaaa, "www.$domain";
lookup mx      => \&AnyEvent::DNS::mx,   $domain;
lookup txt     => \&AnyEvent::DNS::txt,  "txt.$domain";
lookup srv     => \&AnyEvent::DNS::srv,  "ldap", "tcp", $domain;
lookup ptr     => \&AnyEvent::DNS::reverse_lookup, "192.0.2.10";
lookup missing => \&AnyEvent::DNS::a,    "nothing.$domain";
# the general form: whole records [name, type, class, ttl, data...]
lookup records => sub { $resolver->resolve ($_[0], "a", $_[1]) }, "alias.$domain";

$done->recv;

# print in a fixed order: the answers arrived in any order
for my $what (qw(a aaaa mx txt srv ptr missing records)) {
   my @answer = map { ref $_ ? "[@$_]" : $_ } @{ $answer{$what} };
   print "$what: ", (@answer ? "@answer" : "(nothing)"), "\n";
}
