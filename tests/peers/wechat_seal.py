"""Seals a WeChat push exactly as the WeChat server does, with wechatpy's
WeChatCrypto (a real peer nobody here wrote). Reads the plaintext XML on
stdin; prints JSON {"query": …, "body": …} for POST /wechat/callback.

usage: wechat_seal.py TOKEN ENCODING_AES_KEY APP_ID TO_USER [TIMESTAMP]
"""
import hashlib
import json
import sys
import time
import urllib.parse

import xmltodict
from wechatpy.crypto import WeChatCrypto

token, aes_key, app_id, to_user = sys.argv[1:5]
ts = sys.argv[5] if len(sys.argv) > 5 else str(int(time.time()))
nonce = "1320562132"
plain = sys.stdin.read()
crypto = WeChatCrypto(token, aes_key, app_id)
envelope = xmltodict.parse(crypto.encrypt_message(plain, nonce, ts))["xml"]
body = f"<xml><ToUserName><![CDATA[{to_user}]]></ToUserName><Encrypt><![CDATA[{envelope['Encrypt']}]]></Encrypt></xml>"
signature = hashlib.sha1("".join(sorted([token, ts, nonce])).encode()).hexdigest()
query = urllib.parse.urlencode(
    dict(signature=signature, timestamp=ts, nonce=nonce, openid="o-peer", encrypt_type="aes", msg_signature=envelope["MsgSignature"])
)
# wechatpy itself must read back what it sealed.
assert crypto.decrypt_message(body, envelope["MsgSignature"], ts, nonce) == plain
print(json.dumps({"query": query, "body": body}))
