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
  - The evaluation is done by the pyspf library, which implements all of RFC 7208 (every
    mechanism and modifier, macros, the C(exp) explanation, the limits of 10 DNS-querying terms
    and of 2 lookups that return nothing); this module chooses the DNS servers and explains the
    result.
  - All DNS queries of pyspf go through the dnspython library, to the servers in O(nameservers)
    when given.
  - Usually run on the controller with C(delegate_to=localhost), where pyspf and dnspython are
    installed.
author:
  - smarthost.postfix contributors (!UNKNOWN)
requirements:
  - pyspf >= 2.0.14 (Python module C(spf))
  - dnspython >= 2.0
extends_documentation_fragment:
  - smarthost.postfix.read_only
options:
  domain:
    description:
      - The sender domain whose SPF record is checked, that is the domain part of the envelope
        sender address of the mail the relay sends.
      - Required unless O(sender) is given; when both are given, this must be the domain of
        O(sender).
      - To check the HELO identity (what receivers check for bounces, whose envelope sender is
        empty), give the host name the delivering server announces in EHLO.
    type: str
  sender:
    description:
      - The full envelope sender address (C(local-part@domain)) of the mail.
      - Only needed when the record uses the C(%{s}) or C(%{l}) macros; defaults to
        C(postmaster@DOMAIN), which is also what RFC 7208 uses for an empty sender.
      - The domain part is the domain that is checked, see O(domain).
    type: str
  ip:
    description:
      - The IPv4 or IPv6 address that finally delivers the mail to the receiver, normally the
        upstream's outbound address.
      - An IPv4-mapped IPv6 address (V(::ffff:192.0.2.25)) is checked as the IPv4 address.
    type: str
    required: true
  helo:
    description:
      - The host name the delivering server announces in EHLO.
      - Only used to expand the C(%{h}) macro; defaults to the checked domain.
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
  - The C(%{r}) macro (receiving host, only allowed in explanations) expands to C(unknown).
  - A record that uses the C(ptr) mechanism or the C(%{p}) macro makes the module warn, since
    RFC 7208 says not to use them.
seealso:
  - name: RFC 7208
    description: Sender Policy Framework (SPF) for Authorizing Use of Domains in Email, Version 1.
    link: https://www.rfc-editor.org/rfc/rfc7208
  - name: pyspf
    description: The SPF library that evaluates the records.
    link: https://pypi.org/project/pyspf/
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

- name: Check the real sender address, for a record whose macros use the local part
  smarthost.postfix.spf_check:
    sender: alerts@example.com
    ip: 192.0.2.25
    helo: smtp-a.example.net
  delegate_to: localhost

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
  description: The domain that was checked, in lower case and without a final dot.
  returned: always
  type: str
  sample: example.com
ip:
  description: The address that was checked, in normalized form (an IPv4-mapped IPv6 address as IPv4).
  returned: always
  type: str
  sample: 192.0.2.25
record:
  description: The domain's SPF record, or null when it has none (or several, or DNS failed).
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
    - The term that decided the result, and the domain whose record holds it (the checked domain,
      or the target of its C(redirect=) modifier).
    - Null when no term matched (result V(neutral) by default, V(none), or an error).
  returned: always
  type: dict
  sample: {domain: example.com, term: -all}
explanation:
  description: What the result means, in plain words.
  returned: always
  type: str
  sample: "example.com does not permit 192.0.2.25: the term '-all' in the record of example.com gives fail, so receivers may reject the mail."
receiver_explanation:
  description:
    - For V(fail) and V(softfail), the text the domain publishes for receivers to give with the
      rejection (its C(exp=) modifier, macros expanded).
    - Null when the domain publishes none, or for other results.
  returned: always
  type: str
  sample: Mail from 192.0.2.25 is not authorized; see https://example.com/spf
suggestion:
  description:
    - When the address is not permitted, an SPF record for the checked domain that would permit it.
    - Null when the address is permitted, or when DNS failed so that nothing can be suggested.
  returned: always
  type: str
  sample: v=spf1 mx include:_spf.example.net ip4:192.0.2.25 -all
dns_lookups:
  description:
    - How many DNS-querying terms (C(include), C(a), C(mx), C(ptr), C(exists), C(redirect)) the
      evaluation counted; RFC 7208 allows 10.
    - A C(redirect=) counts even where an C(all) term makes it unused.
  returned: always
  type: int
  sample: 2
"""

import contextlib
import ipaddress
import re
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

DNSPYTHON_IMPORT_ERROR = None
try:
    import dns.exception
    import dns.rdatatype
    import dns.resolver
except ImportError:
    DNSPYTHON_IMPORT_ERROR = traceback.format_exc()

PYSPF_IMPORT_ERROR = None
try:
    import spf
except ImportError:
    PYSPF_IMPORT_ERROR = traceback.format_exc()

# What the checked strings may hold: no blanks or control characters in a domain, no control
# characters in an address's local part (where RFC 5321 allows quoted blanks) or in the HELO name
# (only used in macros; SPF's answer to a malformed one is its own).
NAME_RE = re.compile(r'\A[^\s@\x00-\x1f\x7f]+\Z')
HELO_RE = re.compile(r'\A[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?\Z')
SENDER_RE = re.compile(r'\A(?P<local>[^@\x00-\x1f\x7f]*)@(?P<domain>[^\s@\x00-\x1f\x7f]+)\Z')

# How the answers of dnspython become the values pyspf's DNSLookup hands back, as its own
# dnspython driver (spf.DNSLookup_dnspython) makes them.
PYSPF_VALUES = {
    'A': lambda rdata: rdata.address,
    'AAAA': lambda rdata: rdata.address,
    'MX': lambda rdata: (rdata.preference, rdata.exchange.to_text(omit_final_dot=True)),
    'PTR': lambda rdata: rdata.target.to_text(omit_final_dot=True),
    'CNAME': lambda rdata: rdata.target.to_text(omit_final_dot=True),
    'TXT': lambda rdata: rdata.strings,
    'SPF': lambda rdata: rdata.strings,
}


class DnsLookup(object):
    """pyspf's DNSLookup(name, qtype, strict, timeout), over a dnspython resolver of the module's own.

    Returns [((name, type), value), ...] for every record of the answer, CNAMEs included, so that
    pyspf follows aliases itself (at most 10, a loop being no data); no data and NXDOMAIN give [],
    anything else that keeps DNS from answering raises spf.TempError. Every question is kept in
    ``questions``.
    """

    def __init__(self, nameservers=None, port=53, timeout=5.0):
        self.resolver = dns.resolver.Resolver(configure=not nameservers)
        if nameservers:
            self.resolver.nameservers = list(nameservers)
        self.resolver.port = port
        self.resolver.timeout = timeout
        self.resolver.lifetime = timeout
        self.questions = []

    def __call__(self, name, qtype, strict=True, timeout=None):
        self.questions.append((name, qtype))
        try:
            return self.resolve(name, qtype, timeout)
        except dns.resolver.NoNameservers as failure:
            # dnspython follows CNAME chains itself and takes one that loops for a broken server;
            # hand pyspf the alias instead, when the name has one.
            if qtype != 'CNAME':
                try:
                    alias = self.resolve(name, 'CNAME', timeout)
                except (dns.exception.DNSException, spf.TempError):
                    alias = None
                if alias:
                    return alias
            raise spf.TempError('DNS lookup of %s %s failed: %s' % (name, qtype, failure))

    def resolve(self, name, qtype, timeout):
        try:
            answer = self.resolver.resolve(name, qtype, search=False, raise_on_no_answer=False,
                                           lifetime=timeout or self.resolver.lifetime)
        except dns.resolver.NXDOMAIN:
            return []
        except dns.exception.Timeout:
            raise spf.TempError('no DNS answer for %s %s within the timeout' % (name, qtype))
        except dns.resolver.NoNameservers:
            raise
        except dns.exception.DNSException as error:
            raise spf.TempError('DNS lookup of %s %s failed: %s' % (name, qtype, error))
        records = []
        for rrset in answer.response.answer:
            rdtype = dns.rdatatype.to_text(rrset.rdtype)
            if rdtype in PYSPF_VALUES:
                # pyspf files the answer under the name as it asked (dnspython's text form escapes
                # blanks); an alias target under the text that the CNAME value gives it.
                owner = name if rrset.name == answer.qname else rrset.name.to_text(omit_final_dot=True)
                records.extend(((owner, rdtype), PYSPF_VALUES[rdtype](rdata)) for rdata in rrset)
        return records


@contextlib.contextmanager
def pyspf_dns(lookup):
    """Send pyspf's queries through lookup while the block runs (pyspf calls spf.DNSLookup for each)."""
    saved = spf.DNSLookup
    spf.DNSLookup = lookup
    try:
        yield
    finally:
        spf.DNSLookup = saved


class Query(spf.query if PYSPF_IMPORT_ERROR is None else object):
    """pyspf's query, noting each record evaluated at the top level: the domain's own, then redirects."""

    def __init__(self, *args, **kwargs):
        super(Query, self).__init__(*args, **kwargs)
        self.top_level = []

    def check1(self, spf_record, domain, recursion):
        if not recursion:
            self.top_level.append((domain, spf_record))
        return super(Query, self).check1(spf_record, domain, recursion)


def suggest_record(record, address_term, decided_term):
    """The record with the address term, placed where it is evaluated first enough."""
    if record is None:
        return 'v=spf1 %s ~all' % address_term
    # pyspf splits terms at spaces only.
    tokens = [token for token in record.split(' ') if token]
    terms = tokens[1:]
    # Before the top-level term that decided against the address (often 'all'), else before
    # redirect= (mechanisms are evaluated first anyway), else at the end.
    if decided_term in terms:
        position = terms.index(decided_term)
    else:
        redirects = [i for i, text in enumerate(terms) if text.lower().startswith('redirect=')]
        alls = [i for i, text in enumerate(terms) if text.lstrip('+-~?').lower() == 'all']
        position = (alls or redirects or [len(terms)])[0]
    terms.insert(position, address_term)
    return ' '.join([tokens[0]] + terms)


def describe(domain, ip, result, matched, error, receiver_explanation):
    """One to three sentences for the operator."""
    if result == 'pass':
        return '%s permits %s (term %r in the record of %s).' % (domain, ip, matched['term'], matched['domain'])
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
    if matched is not None:
        cause = 'the term %r in the record of %s gives %s' % (matched['term'], matched['domain'], result)
    else:
        cause = 'no term matches it, so the result is %s' % result
    consequence = {
        'fail': 'receivers may reject the mail',
        'softfail': 'receivers will likely accept the mail but mark it as suspicious or spam',
        'neutral': 'receivers get no statement for or against it, so SPF does not help this mail pass',
    }[result]
    text = '%s does not permit %s: %s, so %s.' % (domain, ip, cause, consequence)
    if receiver_explanation:
        text += ' The domain asks receivers to say: %r.' % receiver_explanation
    return text


def check_spf(domain, ip, sender=None, helo=None, nameservers=None, port=53, timeout=5.0):
    """Evaluate with pyspf and return the module's result dict (without 'changed') and warnings."""
    lookup = DnsLookup(nameservers, port, timeout)
    query = Query(i=ip, s=sender or 'postmaster@' + domain, h=helo or domain, timeout=timeout)
    # No default text: what the check returns for fail and softfail is then only the domain's exp=.
    query.set_default_explanation('')
    with pyspf_dns(lookup):
        result, dummy_code, text = query.check()
    record = query.top_level[0][1] if query.top_level else None
    matched = None
    if query.mechanism and result in ('pass', 'fail', 'softfail', 'neutral'):
        matched = {'domain': query.top_level[-1][0], 'term': query.mechanism}
    # pyspf reports errors as 'SPF Permanent Error: WHAT' and 'SPF Temporary Error: WHAT'.
    error = text.partition(': ')[2].rstrip('.') if result in ('permerror', 'temperror') else None
    receiver_explanation = text if result in ('fail', 'softfail') and text else None
    # pyspf took an IPv4-mapped address for the IPv4 one.
    address = ipaddress.ip_address(query.c)
    if result == 'pass' or result == 'temperror' or (result == 'permerror' and record is None):
        suggestion = None
    else:
        # The suggestion edits the checked domain's own record, so only its own term can place it.
        decided_term = matched['term'] if matched is not None and matched['domain'] == domain else None
        suggestion = suggest_record(record, 'ip%d:%s' % (address.version, address), decided_term)
    warnings = []
    if any(qtype == 'PTR' for dummy_name, qtype in lookup.questions):
        warnings.append("the evaluation used the 'ptr' mechanism or the %{p} macro: both are slow and "
                        "unreliable, RFC 7208 says not to use them, and many receivers skip them")
    return dict(
        domain=domain,
        ip=str(address),
        record=record,
        result=result,
        permitted=result == 'pass',
        matched=matched,
        explanation=describe(domain, str(address), result, matched, error, receiver_explanation),
        receiver_explanation=receiver_explanation,
        suggestion=suggestion,
        dns_lookups=query.lookups,
    ), warnings


def checked_domain(module, params):
    """The domain to check, from domain and sender, lower case without a final dot."""
    domain = sender_domain = None
    if params['domain'] is not None:
        if not NAME_RE.match(params['domain']):
            module.fail_json(msg="domain: '%s' is not a domain name (no blanks, control characters or '@')"
                             % params['domain'])
        domain = params['domain'].rstrip('.').lower()
    if params['sender'] is not None:
        match = SENDER_RE.match(params['sender'])
        if not match:
            module.fail_json(msg="sender: '%s' is not one address local-part@domain without control "
                             "characters" % params['sender'])
        sender_domain = match.group('domain').rstrip('.').lower()
        if domain is not None and domain != sender_domain:
            module.fail_json(msg="domain: '%s' is not the domain of sender '%s'" % (params['domain'], params['sender']))
    return domain or sender_domain


def main():
    module = AnsibleModule(
        argument_spec=dict(
            domain=dict(type='str'),
            sender=dict(type='str'),
            ip=dict(type='str', required=True),
            helo=dict(type='str'),
            nameservers=dict(type='list', elements='str'),
            port=dict(type='int', default=53),
            timeout=dict(type='float', default=5.0),
        ),
        required_one_of=[('domain', 'sender')],
        supports_check_mode=True,
    )
    if DNSPYTHON_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib('dnspython'), exception=DNSPYTHON_IMPORT_ERROR)
    if PYSPF_IMPORT_ERROR:
        module.fail_json(msg=missing_required_lib('pyspf'), exception=PYSPF_IMPORT_ERROR)

    params = module.params
    domain = checked_domain(module, params)
    try:
        ipaddress.ip_address(params['ip'])
    except ValueError:
        module.fail_json(msg="ip: '%s' is not an IPv4 or IPv6 address" % params['ip'])
    if params['helo'] is not None and not HELO_RE.match(params['helo']):
        module.fail_json(msg="helo: '%s' holds control characters or starts or ends with a blank" % params['helo'])
    for server in params['nameservers'] or []:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            module.fail_json(msg="nameservers: '%s' is not an IP address" % server)
    if not 0 < params['port'] < 65536:
        module.fail_json(msg='port: %d is not a port number (1 to 65535)' % params['port'])
    if params['timeout'] <= 0:
        module.fail_json(msg='timeout: must be more than 0 seconds')

    try:
        result, warnings = check_spf(domain, params['ip'], params['sender'], params['helo'],
                                     params['nameservers'], params['port'], params['timeout'])
    except dns.resolver.NoResolverConfiguration as error:
        module.fail_json(msg='nameservers: not given, and the system resolver configuration cannot be used: %s' % error)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
