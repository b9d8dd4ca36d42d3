#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: spf_check
short_description: Tell whether a sender domain's SPF record permits the address that delivers its mail
version_added: 0.1.0
description:
  - Looks up the SPF record of a sender domain and evaluates it for one IP address, the way a
    receiving mail server would (RFC 7208 C(check_host)), then says in plain words whether that
    address is permitted and, when it is not, suggests a record that would permit it.
  - For a relay that hands its mail to an upstream, the address to check is the upstream's
    outbound address, because that is the host the final receiver sees.
  - Evaluates the V(ip4), V(ip6), V(a), V(mx), V(include), V(exists), V(ptr) and V(all)
    mechanisms with their qualifiers, CIDR lengths and macros, the C(redirect) modifier, the limit
    of 10 DNS-querying terms and the limit of 2 lookups that return nothing.
  - The C(exp) modifier is not looked up; explanations come from this module.
  - All DNS queries go through the dnspython library, to the servers in O(nameservers) when given.
  - Usually run on the controller with C(delegate_to=localhost), where dnspython is installed.
author:
  - smarthost.postfix contributors (!UNKNOWN)
requirements:
  - dnspython >= 2.0
extends_documentation_fragment:
  - smarthost.postfix.read_only
options:
  domain:
    description:
      - The sender domain whose SPF record is checked, that is the domain part of the envelope
        sender address of the mail the relay sends.
    type: str
    required: true
  ip:
    description:
      - The IPv4 or IPv6 address that finally delivers the mail to the receiver, normally the
        upstream's outbound address.
    type: str
    required: true
  helo:
    description:
      - The host name the delivering server announces in EHLO.
      - Only used to expand the C(%{h}) macro; defaults to O(domain).
    type: str
  nameservers:
    description:
      - IP addresses of the DNS servers to ask.
      - When not given, the system resolver configuration (C(/etc/resolv.conf)) is used.
    type: list
    elements: str
  port:
    description:
      - UDP/TCP port of the DNS servers in O(nameservers).
    type: int
    default: 53
  timeout:
    description:
      - Seconds to wait for the answer to one DNS query before the result is V(temperror).
    type: float
    default: 5
notes:
  - The envelope sender is taken as C(postmaster@DOMAIN) when a macro needs it.
  - The C(%{p}) macro expands to C(unknown) instead of a validated reverse DNS name.
seealso:
  - name: RFC 7208
    description: Sender Policy Framework (SPF) for Authorizing Use of Domains in Email, Version 1.
    link: https://www.rfc-editor.org/rfc/rfc7208
"""

EXAMPLES = r"""
- name: Is the upstream's outbound address permitted to send for example.com?
  smarthost.postfix.spf_check:
    domain: example.com
    ip: 192.0.2.25
  delegate_to: localhost
  register: spf

- name: Show the advice
  ansible.builtin.debug:
    msg: "{{ spf.explanation }}{{ (' Suggested record: ' ~ spf.suggestion) if spf.suggestion else '' }}"

- name: Ask a specific DNS server, for example the authoritative one or a lab server
  smarthost.postfix.spf_check:
    domain: example.com
    ip: 2001:db8::25
    nameservers: [192.0.2.53]
    timeout: 3
  delegate_to: localhost
"""

RETURN = r"""
domain:
  description: The domain that was checked.
  returned: always
  type: str
  sample: example.com
ip:
  description: The address that was checked, in normalized form.
  returned: always
  type: str
  sample: 192.0.2.25
record:
  description: The domain's SPF record, or null when it has none (or several).
  returned: always
  type: str
  sample: v=spf1 mx include:_spf.example.net -all
result:
  description: The SPF result as defined in RFC 7208.
  returned: always
  type: str
  choices: [pass, fail, softfail, neutral, none, permerror, temperror]
  sample: fail
permitted:
  description: Whether receivers will see the address as permitted (O(ip) gets V(pass)).
  returned: always
  type: bool
  sample: false
matched:
  description:
    - The term that decided the result, and the domain whose record holds it.
    - Null when no term matched (result V(neutral) by default, V(none), or an error).
  returned: always
  type: dict
  sample: {domain: example.com, term: -all}
explanation:
  description: What the result means, in plain words.
  returned: always
  type: str
  sample: "example.com does not permit 192.0.2.25: the term '-all' gives fail, so receivers may reject the mail."
suggestion:
  description:
    - When the address is not permitted, an SPF record for O(domain) that would permit it.
    - Null when the address is permitted, or when DNS failed so that nothing can be suggested.
  returned: always
  type: str
  sample: v=spf1 mx include:_spf.example.net ip4:192.0.2.25 -all
dns_lookups:
  description: How many DNS-querying terms the evaluation used (RFC 7208 allows 10).
  returned: always
  type: int
  sample: 2
"""

import ipaddress
import re
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

DNSPYTHON_IMPORT_ERROR = None
try:
    import dns.exception
    import dns.name
    import dns.resolver
    import dns.reversename
except ImportError:
    DNSPYTHON_IMPORT_ERROR = traceback.format_exc()

MAX_DNS_TERMS = 10
MAX_VOID_LOOKUPS = 2
MAX_NAMES_PER_TERM = 10

QUALIFIER_RESULTS = {'+': 'pass', '-': 'fail', '~': 'softfail', '?': 'neutral'}
MECHANISMS = ('all', 'include', 'a', 'mx', 'ptr', 'ip4', 'ip6', 'exists')
# These are the terms RFC 7208 section 4.6.4 counts against the limit of 10.
DNS_TERMS = ('include', 'a', 'mx', 'ptr', 'exists', 'redirect')

MODIFIER_RE = re.compile(r'^([a-z][a-z0-9_.-]*)=(.*)$', re.IGNORECASE)
MECHANISM_RE = re.compile(r'^([+?~-]?)([a-z0-9]+)([:/].*)?$', re.IGNORECASE)
# domain-spec with optional dual CIDR, as used by a and mx: a:example.com/24//64
DUAL_CIDR_RE = re.compile(r'^(?::(?P<spec>[^/]+))?(?:/(?P<v4>0|[1-9][0-9]?))?(?://(?P<v6>0|[1-9][0-9]{0,2}))?$')
MACRO_RE = re.compile(r'%(?:\{(?P<letter>[a-z])(?P<digits>[0-9]*)(?P<reverse>r?)(?P<delims>[.+,/_=-]*)\}|(?P<literal>[%_-]))',
                      re.IGNORECASE)


class SpfError(Exception):
    """Ends the evaluation with permerror or temperror."""

    def __init__(self, result, message):
        super(SpfError, self).__init__(message)
        self.result = result
        self.message = message


class Term(object):
    def __init__(self, index, text, qualifier=None, name=None, value=None, cidr4=None, cidr6=None,
                 modifier=False):
        self.index = index
        self.text = text
        self.qualifier = qualifier
        self.name = name
        self.value = value
        self.cidr4 = cidr4
        self.cidr6 = cidr6
        self.modifier = modifier


class Outcome(object):
    def __init__(self, result, domain, term=None):
        self.result = result
        self.domain = domain
        self.term = term


def parse_record(record):
    """Split an SPF record into mechanisms and modifiers; any syntax error is a permerror."""
    mechanisms = []
    modifiers = {}
    for index, text in enumerate(record.split()[1:]):
        modifier = MODIFIER_RE.match(text)
        if modifier:
            name = modifier.group(1).lower()
            if name in modifiers and name in ('redirect', 'exp'):
                raise SpfError('permerror', "the record has more than one '%s=' modifier" % name)
            modifiers[name] = Term(index, text, name=name, value=modifier.group(2), modifier=True)
            continue
        match = MECHANISM_RE.match(text)
        if not match or match.group(2).lower() not in MECHANISMS:
            raise SpfError('permerror', "'%s' is not a valid SPF term" % text)
        mechanisms.append(parse_mechanism(index, text, match.group(1) or '+', match.group(2).lower(),
                                          match.group(3) or ''))
    for name in ('redirect', 'exp'):
        if name in modifiers and not modifiers[name].value:
            raise SpfError('permerror', "the '%s=' modifier has no domain" % name)
    return mechanisms, modifiers


def parse_mechanism(index, text, qualifier, name, rest):
    term = Term(index, text, qualifier=qualifier, name=name)
    invalid = SpfError('permerror', "'%s' is not a valid SPF term" % text)
    if name == 'all':
        if rest:
            raise invalid
    elif name in ('ip4', 'ip6'):
        if not rest.startswith(':'):
            raise invalid
        try:
            network = ipaddress.ip_network(rest[1:], strict=False)
        except ValueError:
            raise invalid
        if network.version != (4 if name == 'ip4' else 6) or not re.match(r'^[^/]+(/(0|[1-9][0-9]*))?$', rest[1:]):
            raise invalid
        term.value = network
    elif name in ('a', 'mx'):
        match = DUAL_CIDR_RE.match(rest)
        if not match:
            raise invalid
        term.value = match.group('spec')
        term.cidr4 = int(match.group('v4') or 32)
        term.cidr6 = int(match.group('v6') or 128)
        if term.cidr4 > 32 or term.cidr6 > 128:
            raise invalid
    elif name == 'ptr':
        if rest and not rest.startswith(':') or rest == ':':
            raise invalid
        term.value = rest[1:] or None
    else:  # include, exists: a domain-spec is required
        if not rest.startswith(':') or len(rest) < 2:
            raise invalid
        term.value = rest[1:]
    return term


class DnsClient(object):
    """The only place that talks to DNS; unit tests point it at their own server."""

    def __init__(self, nameservers=None, port=53, timeout=5.0):
        self.resolver = dns.resolver.Resolver(configure=not nameservers)
        if nameservers:
            self.resolver.nameservers = list(nameservers)
        self.resolver.port = port
        self.resolver.timeout = timeout
        self.resolver.lifetime = timeout

    def query(self, name, rdtype):
        """Return the answer's records (empty for NXDOMAIN or no data); DNS failures are temperror."""
        try:
            answer = self.resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return []
        except dns.exception.Timeout:
            raise SpfError('temperror', 'no DNS answer for %s %s within the timeout' % (name, rdtype))
        except dns.resolver.NoNameservers:
            raise SpfError('temperror', 'the DNS server failed to answer %s %s (SERVFAIL or refused)'
                           % (name, rdtype))
        except dns.exception.DNSException as error:
            raise SpfError('temperror', 'DNS lookup of %s %s failed: %s' % (name, rdtype, error))
        return list(answer)


class SpfEvaluator(object):
    """RFC 7208 check_host() for one address, counting lookups across includes and redirects."""

    def __init__(self, dns_client, ip, sender_domain, helo=None):
        self.dns = dns_client
        self.ip = ipaddress.ip_address(ip)
        self.sender_domain = sender_domain
        self.helo = helo or sender_domain
        self.dns_terms = 0
        self.void_lookups = 0
        self.warnings = []
        self.records = {}

    def fetch_record(self, domain):
        """The one 'v=spf1' TXT record of a domain, or None; asked once per domain and evaluation."""
        if domain not in self.records:
            self.records[domain] = self.select_record(domain)
        return self.records[domain]

    def select_record(self, domain):
        records = []
        for rdata in self.dns.query(domain, 'TXT'):
            text = b''.join(rdata.strings).decode('utf-8', 'replace')
            if text.lower() == 'v=spf1' or text.lower().startswith('v=spf1 '):
                records.append(text)
        if len(records) > 1:
            raise SpfError('permerror', '%s publishes %d SPF records; receivers need exactly one'
                           % (domain, len(records)))
        return records[0] if records else None

    def check_host(self, domain):
        record = self.fetch_record(domain)
        if record is None:
            return Outcome('none', domain)
        mechanisms, modifiers = parse_record(record)
        for term in mechanisms:
            if self.matches(term, domain):
                return Outcome(QUALIFIER_RESULTS[term.qualifier], domain, term)
        # redirect= only applies when no 'all' term exists (RFC 7208 section 6.1).
        redirect = modifiers.get('redirect')
        if redirect and not any(term.name == 'all' for term in mechanisms):
            self.count_dns_term()
            target = self.expand(redirect.value, domain)
            outcome = self.check_host(target)
            if outcome.result == 'none':
                raise SpfError('permerror', "%s redirects to %s, which has no SPF record" % (domain, target))
            return outcome
        return Outcome('neutral', domain)

    def count_dns_term(self):
        self.dns_terms += 1
        if self.dns_terms > MAX_DNS_TERMS:
            raise SpfError('permerror', 'evaluating the record needs more than %d DNS lookups '
                           '(include, a, mx, ptr, exists, redirect)' % MAX_DNS_TERMS)

    def query_counting_void(self, name, rdtype):
        records = self.dns.query(name, rdtype)
        if not records:
            self.void_lookups += 1
            if self.void_lookups > MAX_VOID_LOOKUPS:
                raise SpfError('permerror', 'more than %d lookups returned nothing (the last: %s %s)'
                               % (MAX_VOID_LOOKUPS, name, rdtype))
        return records

    def address_type(self):
        return 'A' if self.ip.version == 4 else 'AAAA'

    def in_network(self, address, term):
        prefix = term.cidr4 if self.ip.version == 4 else term.cidr6
        return self.ip in ipaddress.ip_network('%s/%d' % (address, prefix), strict=False)

    def matches(self, term, domain):
        name = term.name
        if name == 'all':
            return True
        if name in ('ip4', 'ip6'):
            return self.ip.version == term.value.version and self.ip in term.value
        self.count_dns_term()
        target = self.expand(term.value, domain) if term.value else domain
        if name == 'include':
            outcome = self.check_host(target)
            if outcome.result == 'none':
                raise SpfError('permerror', "%s includes %s, which has no SPF record" % (domain, target))
            return outcome.result == 'pass'
        if name == 'exists':
            # Always an A query, whatever the client's address family (RFC 7208 section 5.7).
            return bool(self.query_counting_void(target, 'A'))
        if name == 'a':
            return any(self.in_network(rdata.address, term)
                       for rdata in self.query_counting_void(target, self.address_type()))
        if name == 'mx':
            return self.matches_mx(term, target)
        return self.matches_ptr(target)

    def matches_mx(self, term, target):
        exchanges = self.query_counting_void(target, 'MX')
        if len(exchanges) > MAX_NAMES_PER_TERM:
            raise SpfError('permerror', '%s has more than %d MX records' % (target, MAX_NAMES_PER_TERM))
        for rdata in sorted(exchanges, key=lambda mx: mx.preference):
            host = rdata.exchange.to_text(omit_final_dot=True)
            if any(self.in_network(address.address, term) for address in self.dns.query(host, self.address_type())):
                return True
        return False

    def matches_ptr(self, target):
        self.warnings.append("the 'ptr' mechanism is slow and unreliable; RFC 7208 says not to use it")
        target = target.lower().rstrip('.')
        try:
            names = self.query_counting_void(dns.reversename.from_address(str(self.ip)).to_text(), 'PTR')
            for rdata in names[:MAX_NAMES_PER_TERM]:
                host = rdata.target.to_text(omit_final_dot=True).lower()
                if host != target and not host.endswith('.' + target):
                    continue
                if any(self.ip == ipaddress.ip_address(a.address) for a in self.dns.query(host, self.address_type())):
                    return True
        except SpfError as error:
            # DNS trouble while validating names means no match, not an error (RFC 7208 section 5.5).
            if error.result != 'temperror':
                raise
        return False

    def macro_value(self, letter, domain):
        letter = letter.lower()
        if letter in ('s', 'l', 'o'):
            return {'s': 'postmaster@' + self.sender_domain, 'l': 'postmaster', 'o': self.sender_domain}[letter]
        if letter == 'd':
            return domain
        if letter == 'i':
            if self.ip.version == 4:
                return str(self.ip)
            return '.'.join(self.ip.exploded.replace(':', ''))
        if letter == 'v':
            return 'in-addr' if self.ip.version == 4 else 'ip6'
        if letter == 'h':
            return self.helo
        if letter == 'p':
            return 'unknown'
        raise SpfError('permerror', "the macro letter '%s' is not allowed in a domain name" % letter)

    def expand(self, spec, domain):
        """Expand the macros in a domain-spec (RFC 7208 section 7) and check the result is a domain."""
        def replace(match):
            if match.group('literal'):
                return {'%': '%', '_': ' ', '-': '%20'}[match.group('literal')]
            value = self.macro_value(match.group('letter'), domain)
            parts = re.split('[%s]' % re.escape(match.group('delims') or '.'), value)
            if match.group('reverse'):
                parts.reverse()
            if match.group('digits'):
                keep = int(match.group('digits'))
                if keep == 0:
                    raise SpfError('permerror', "'%s' keeps zero labels" % match.group(0))
                parts = parts[-keep:]
            return '.'.join(parts)

        if '%' in MACRO_RE.sub('', spec):
            raise SpfError('permerror', "'%s' has a malformed macro" % spec)
        expanded = MACRO_RE.sub(replace, spec).rstrip('.')
        # Over-long results lose labels from the left (RFC 7208 section 7.3).
        while len(expanded) > 253 and '.' in expanded:
            expanded = expanded.split('.', 1)[1]
        labels = expanded.split('.')
        if len(labels) < 2 or not all(labels) or ' ' in expanded or labels[-1].isdigit():
            raise SpfError('permerror', "'%s' is not a valid domain name" % expanded)
        return expanded


def suggest_record(record, ip, outcome):
    """The record with an ip4:/ip6: term for the address, placed where it is evaluated first enough."""
    ip = ipaddress.ip_address(ip)
    address_term = '%s:%s' % ('ip4' if ip.version == 4 else 'ip6', ip)
    if record is None:
        return 'v=spf1 %s ~all' % address_term
    tokens = record.split()
    terms = tokens[1:]
    # Before the top-level term that decided against the address (often 'all'), else before
    # redirect= (mechanisms are evaluated first anyway), else at the end.
    if outcome is not None and outcome.term is not None and outcome.term.index is not None:
        position = outcome.term.index
    else:
        redirects = [i for i, text in enumerate(terms) if text.lower().startswith('redirect=')]
        alls = [i for i, text in enumerate(terms) if text.lstrip('+-~?').lower() == 'all']
        position = (alls or redirects or [len(terms)])[0]
    terms.insert(position, address_term)
    return ' '.join([tokens[0]] + terms)


def describe(domain, ip, result, decided, error):
    """One or two sentences for the operator."""
    if result == 'pass':
        return '%s permits %s (term %r in the record of %s).' % (domain, ip, decided.term.text, decided.domain)
    if result == 'none':
        return ('%s has no SPF record, so receivers cannot tell that %s may send for it; many treat such '
                'mail with suspicion. Publish one that lists every host that sends for %s, and end it with '
                "-all instead of ~all once the list is complete." % (domain, ip, domain))
    if result == 'temperror':
        return ('Could not evaluate the SPF record of %s: %s. Receivers that see the same will defer or '
                'accept the mail without SPF; check the DNS servers and try again.' % (domain, error))
    if result == 'permerror':
        return ('The SPF record of %s is broken: %s. Receivers treat this as an error (many reject); fix the '
                'record as well as adding %s.' % (domain, error, ip))
    if decided is not None and decided.term is not None:
        cause = 'the term %r in the record of %s gives %s' % (decided.term.text, decided.domain, result)
    else:
        cause = 'no term matches it, so the result is %s' % result
    consequence = {
        'fail': 'receivers may reject the mail',
        'softfail': 'receivers will likely accept the mail but mark it as suspicious or spam',
        'neutral': 'receivers get no statement for or against it, so SPF does not help this mail pass',
    }[result]
    return '%s does not permit %s: %s, so %s.' % (domain, ip, cause, consequence)


def check_spf(dns_client, domain, ip, helo=None):
    """Evaluate and return the module's result dict (without 'changed') and warnings."""
    evaluator = SpfEvaluator(dns_client, ip, domain, helo)
    record = outcome = error = None
    try:
        # Fetched first so that the record is reported even when its evaluation fails.
        record = evaluator.fetch_record(domain)
        outcome = evaluator.check_host(domain)
        result = outcome.result
    except SpfError as failure:
        result, error = failure.result, failure.message
    # The suggestion edits the top-level record, so only a top-level term can place it.
    top_level = outcome if outcome is not None and outcome.domain == domain else None
    if result == 'pass' or result == 'temperror' or (result == 'permerror' and record is None):
        suggestion = None
    else:
        suggestion = suggest_record(record, ip, top_level)
    matched = None
    if outcome is not None and outcome.term is not None:
        matched = {'domain': outcome.domain, 'term': outcome.term.text}
    normalized_ip = str(evaluator.ip)
    return dict(
        domain=domain,
        ip=normalized_ip,
        record=record,
        result=result,
        permitted=result == 'pass',
        matched=matched,
        explanation=describe(domain, normalized_ip, result, outcome, error),
        suggestion=suggestion,
        dns_lookups=evaluator.dns_terms,
    ), evaluator.warnings


def main():
    module = AnsibleModule(
        argument_spec=dict(
            domain=dict(type='str', required=True),
            ip=dict(type='str', required=True),
            helo=dict(type='str'),
            nameservers=dict(type='list', elements='str'),
            port=dict(type='int', default=53),
            timeout=dict(type='float', default=5.0),
        ),
        supports_check_mode=True,
    )
    if DNSPYTHON_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib('dnspython'), exception=DNSPYTHON_IMPORT_ERROR)

    params = module.params
    domain = params['domain'].strip().rstrip('.').lower()
    try:
        ipaddress.ip_address(params['ip'])
    except ValueError:
        module.fail_json(msg="ip: '%s' is not an IPv4 or IPv6 address" % params['ip'])
    for server in params['nameservers'] or []:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            module.fail_json(msg="nameservers: '%s' is not an IP address" % server)
    if params['timeout'] <= 0:
        module.fail_json(msg='timeout: must be more than 0 seconds')

    try:
        dns.name.from_text(domain)
    except dns.exception.DNSException as error:
        module.fail_json(msg="domain: '%s' is not a valid domain name (%s)" % (params['domain'], error))

    client = DnsClient(params['nameservers'], params['port'], params['timeout'])
    result, warnings = check_spf(client, domain, params['ip'], params['helo'])
    for warning in sorted(set(warnings)):
        module.warn(warning)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
